"""pytest-benchmark suites of the library's hot paths (``pytest benchmarks``; see docs/performance.md)."""

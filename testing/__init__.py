"""The test toolkit shared by every suite: the tolerance table (`testing.tolerances`) and the one array
assertion (`testing.assertions.assert_close`).  Test-only: not installed with the package, depends on
NumPy alone (torch tensors are accepted by duck typing), and imports nothing from the suites."""

"""reference: the float64 NumPy oracle, one function per SPEC equation."""

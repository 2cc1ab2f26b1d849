"""impl.train."""

__all__: list[str] = []

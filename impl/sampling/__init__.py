"""impl.sampling."""

__all__: list[str] = []

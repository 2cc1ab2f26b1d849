"""impl.diffusion."""

__all__: list[str] = []

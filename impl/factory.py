"""Factories with the original flag names: create_model_and_diffusion and friends."""

__all__: list[str] = []

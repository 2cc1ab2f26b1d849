"""The project's unit, integration and end-to-end tests.

A regular package (not a namespace one) on purpose: torch-fidelity 0.4 installs a top-level ``tests``
package into site-packages, which would otherwise shadow this folder for ``from tests.x import y``.
"""

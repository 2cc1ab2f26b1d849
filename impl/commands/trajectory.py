"""``iddpm sample --save_trajectory k``: one PNG strip per sample of every k-th step of its reverse loop.

Files: ``<stem>_trajectory/sample_00000.png`` … next to ``<stem>.npz`` (one per sample, numbered as in the
``.npz``).  A strip has two rows and one column per recorded step, left to right in the loop's order:
steps 0, k, 2k, … and always the last one (``impl.sampling.trajectory.recorded_steps``).  The top row is
the step's output ``sample`` (x_{t−1}; the first column, after one step from x_T, is still noise, the last
is the final x₀, pixel for pixel the image in the ``.npz``), the bottom row the x̂₀ (``pred_xstart``) the
step predicted.  Tiles are separated by 2 black pixels, and the strip is enlarged as
``impl.data.writers.resolve_scale`` says (``--grid_scale``).

The writer is a ``BatchStepObserver``: ``generate_samples`` feeds it each batch's step dicts; it keeps
only the recorded steps as uint8 on the CPU and writes (atomically) and drops them at the batch's end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from impl.data.writers import enlarge_nearest, grid_shape, image_grid, resolve_scale, save_png
from impl.sampling.trajectory import StepDict, TrajectoryRecorder, check_every

__all__ = [
    "STRIP_PADDING",
    "TrajectoryWriter",
    "check_new_trajectory_folder",
    "strip_file_name",
    "strip_shape",
    "trajectory_folder",
    "trajectory_strip",
]

STRIP_PADDING = 2


def trajectory_folder(npz: Path) -> Path:
    """``<folder>/<stem>_trajectory`` for the samples file ``<folder>/<stem>.npz``."""
    return npz.with_name(f"{npz.stem}_trajectory")


def strip_file_name(sample_index: int) -> str:
    """``sample_00000.png`` for sample 0 of the ``.npz``."""
    return f"sample_{sample_index:05d}.png"


def check_new_trajectory_folder(folder: Path, flag: str = "--save_trajectory") -> None:
    """Refuse a trajectory folder that already exists: strips are never overwritten."""
    if folder.exists():
        raise ValueError(
            f"{flag}: {str(folder)!r} already exists; pass --overwrite, remove it or write the samples "
            "elsewhere (--output)"
        )


def strip_shape(num_columns: int, height: int, width: int) -> tuple[int, int]:
    """(height, width) of a strip of ``num_columns`` steps of ``height`` x ``width`` images, unscaled."""
    return grid_shape(2 * num_columns, height, width, num_columns, padding=STRIP_PADDING)


def trajectory_strip(samples: NDArray[np.uint8], pred_xstart: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Two rows of S tiles (uint8 HWC): ``samples`` (S, H, W, C) on top, ``pred_xstart`` below."""
    if samples.shape != pred_xstart.shape or samples.ndim != 4:
        raise ValueError(
            "samples and pred_xstart must both have shape (S, H, W, C); "
            f"got {samples.shape} and {pred_xstart.shape}"
        )
    columns = samples.shape[0]
    return image_grid(np.concatenate([samples, pred_xstart]), columns, padding=STRIP_PADDING)


class TrajectoryWriter:
    """Writes ``folder/sample_<i>.png`` strips of every ``every``-th step, enlarged by ``scale``
    (0: the auto rule).  ``written`` lists the files in the order they were written."""

    def __init__(self, folder: Path, every: int, scale: int = 0) -> None:
        self.folder = folder
        self.every = check_every(every)
        resolve_scale(scale, (1, 1), (1, 1))  # checks the value; the factor depends on each strip
        self.scale = scale
        self.written: list[Path] = []
        self._recorder: TrajectoryRecorder | None = None
        self._first = 0

    def begin_batch(self, first_index: int, size: int) -> None:
        self._recorder = TrajectoryRecorder(self.every)
        self._first = first_index

    def observe(self, step_index: int, out: StepDict) -> None:
        if self._recorder is None:
            raise ValueError("TrajectoryWriter.observe called outside begin_batch/end_batch")
        self._recorder.observe(step_index, out)

    def end_batch(self) -> None:
        if self._recorder is None:
            raise ValueError("TrajectoryWriter.end_batch called without begin_batch")
        trajectory = self._recorder.finish()
        self._recorder = None
        self.folder.mkdir(parents=True, exist_ok=True)
        for j in range(trajectory.samples[0].shape[0]):
            samples, pred_xstart = trajectory.of_sample(j)
            strip = trajectory_strip(samples, pred_xstart)
            tile = (samples.shape[1], samples.shape[2])
            factor = resolve_scale(self.scale, tile, (strip.shape[0], strip.shape[1]), name="--grid_scale")
            path = self.folder / strip_file_name(self._first + j)
            save_png(path, enlarge_nearest(strip, factor))
            self.written.append(path)


def plan_pictures(
    *,
    grid_scale: int,
    save_trajectory: int | None,
    npz: Path,
    image_hw: tuple[int, int],
    grid_images: int,
    num_steps: int,
    overwrite: bool = False,
) -> TrajectoryWriter | None:
    """Check ``--grid_scale`` against the grid of ``grid_images`` images and (with ``save_trajectory``)
    the strips of a ``num_steps``-step loop before anything is sampled; the trajectory writer, or None.
    An existing trajectory folder is refused unless ``overwrite`` (its strips are then replaced)."""
    from impl.sampling.trajectory import recorded_steps

    resolve_scale(grid_scale, image_hw, grid_shape(grid_images, *image_hw), name="--grid_scale")
    if save_trajectory is None:
        return None
    every = check_every(save_trajectory, "--save_trajectory")
    columns = len(recorded_steps(num_steps, every))
    resolve_scale(grid_scale, image_hw, strip_shape(columns, *image_hw), name="--grid_scale")
    folder = trajectory_folder(npz)
    if not overwrite:
        check_new_trajectory_folder(folder)
    return TrajectoryWriter(folder, every, grid_scale)

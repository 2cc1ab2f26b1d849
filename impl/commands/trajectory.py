"""``iddpm sample --save_trajectory k``: one PNG strip per sample of every k-th step of its reverse loop.

Files: ``<stem>_trajectory/sample_00000.png`` … next to ``<stem>.npz`` (one per sample, numbered as in the
``.npz``).  A strip has two rows and one column per recorded step, left to right in the loop's order:
steps 0, k, 2k, … and always the last one (``impl.sampling.trajectory.recorded_steps``).  The top row is
the step's output ``sample`` (x_{t−1}; the first column, after one step from x_T, is still noise, the last
is the final x₀, pixel for pixel the image in the ``.npz``), the bottom row the x̂₀ (``pred_xstart``) the
step predicted.  A loop that runs no step (an edit with ℓ₀ = ⌊s·T + ½⌋ = 0, e.g. ``--strength 0``, whose
result is the init image) gets a one-column strip: x_t = x̂₀ = the image.  Tiles are separated by 2 black
pixels, and the strip is enlarged as ``impl.data.writers.resolve_scale`` says (``--grid_scale``).

The writer is a ``BatchStepObserver``: ``generate_samples`` feeds it each batch's step dicts; it keeps
only the recorded steps as uint8 on the CPU and writes and drops them at the batch's end, into a hidden
temporary sibling of the folder.  :meth:`TrajectoryWriter.finish` (after the ``.npz`` is saved) renames
that staging folder into place, so the folder appears complete or not at all; with ``overwrite`` an
existing folder is replaced as a whole (moved aside, removed only once the new one is in place).
:meth:`TrajectoryWriter.discard` removes the staging folder of a run that failed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from impl.atomic import fsync_dir, temporary_name
from impl.data.writers import enlarge_nearest, grid_shape, image_grid, resolve_scale, save_png
from impl.sampling.trajectory import StepDict, TrajectoryRecorder, check_every

__all__ = [
    "STRIP_PADDING",
    "TrajectoryWriter",
    "check_new_trajectory_folder",
    "loop_step_count",
    "plan_pictures",
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
    (0: the auto rule), through a hidden staging folder that :meth:`finish` renames to ``folder``.

    ``written`` lists the strips' final paths in the order they were written (they exist under ``folder``
    only after :meth:`finish`).  ``overwrite``: an existing ``folder`` is replaced as a whole by
    :meth:`finish`; without it an existing ``folder`` is refused there (as :func:`plan_pictures` refuses
    it before sampling).
    """

    def __init__(self, folder: Path, every: int, scale: int = 0, *, overwrite: bool = False) -> None:
        self.folder = folder
        self.every = check_every(every)
        resolve_scale(scale, (1, 1), (1, 1))  # checks the value; the factor depends on each strip
        self.scale = scale
        self.overwrite = overwrite
        self.written: list[Path] = []
        self._recorder: TrajectoryRecorder | None = None
        self._first = 0
        self._size = 0
        self._staging: Path | None = None
        self._stepless: list[tuple[int, int]] = []  # (first index, size) of batches whose loop ran no step

    @property
    def staging(self) -> Path | None:
        """The hidden folder the strips are written to until :meth:`finish` (None before the first)."""
        return self._staging

    def begin_batch(self, first_index: int, size: int) -> None:
        self._recorder = TrajectoryRecorder(self.every)
        self._first, self._size = first_index, size

    def observe(self, step_index: int, out: StepDict) -> None:
        if self._recorder is None:
            raise ValueError("TrajectoryWriter.observe called outside begin_batch/end_batch")
        self._recorder.observe(step_index, out)

    def end_batch(self) -> None:
        if self._recorder is None:
            raise ValueError("TrajectoryWriter.end_batch called without begin_batch")
        recorder, self._recorder = self._recorder, None
        if recorder.steps_seen == 0:  # nothing ran: the batch's result is its start, known at finish()
            self._stepless.append((self._first, self._size))
            return
        trajectory = recorder.finish()
        for j in range(trajectory.samples[0].shape[0]):
            self._write(self._first + j, *trajectory.of_sample(j))

    def _write(self, index: int, samples: NDArray[np.uint8], pred_xstart: NDArray[np.uint8]) -> None:
        if self._staging is None:
            self.folder.parent.mkdir(parents=True, exist_ok=True)  # a run's samples/ on its first sampling
            staging = temporary_name(self.folder)
            staging.mkdir()
            self._staging = staging
        strip = trajectory_strip(samples, pred_xstart)
        tile = (samples.shape[1], samples.shape[2])
        factor = resolve_scale(self.scale, tile, (strip.shape[0], strip.shape[1]), name="--grid_scale")
        save_png(self._staging / strip_file_name(index), enlarge_nearest(strip, factor))
        self.written.append(self.folder / strip_file_name(index))

    def finish(self, images: NDArray[np.uint8]) -> Path:
        """Put the strips in place: ``images`` (N, H, W, C) uint8, the run's samples as saved, give the
        one-column strips of the batches that ran no step; then the staging folder is renamed to
        ``folder`` (an existing one, with ``overwrite``, is moved aside first and removed after).  On a
        failure the staging folder is removed and an old ``folder`` is put back.  Returns ``folder``."""
        try:
            for first, size in self._stepless:
                if first + size > images.shape[0]:
                    raise ValueError(
                        f"images holds {images.shape[0]} samples; the batch of samples {first} … "
                        f"{first + size - 1} ran no step and needs its images for its strips"
                    )
                for index in range(first, first + size):
                    still = images[index : index + 1]
                    self._write(index, still, still)
            self._stepless = []
            if self._staging is None:
                raise ValueError("no batch was recorded: there are no strips to put in place")
            fsync_dir(self._staging)
            self._put_in_place(self._staging)
        except BaseException:
            self.discard()
            raise
        self._staging = None
        return self.folder

    def _put_in_place(self, staging: Path) -> None:
        old: Path | None = None
        if self.folder.exists() or self.folder.is_symlink():
            if not self.overwrite:
                check_new_trajectory_folder(self.folder)
            old = temporary_name(self.folder)
            os.replace(self.folder, old)
        try:
            os.replace(staging, self.folder)
        except BaseException:
            if old is not None:
                with contextlib.suppress(OSError):
                    os.replace(old, self.folder)
            raise
        fsync_dir(self.folder.parent)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    old.unlink()

    def discard(self) -> None:
        """Remove the staging folder (a failed or interrupted run); ``folder`` itself is left as it is."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        self._stepless = []


def loop_step_count(
    num_timesteps: int,
    *,
    strength: float | None = None,
    jump_length: int = 10,
    resample_jumps: int = 1,
) -> int:
    """The reverse steps (network calls, step dicts) one batch's loop runs: the chain's ``num_timesteps``
    from noise (``strength`` None), or an edit's descents in ``impl.sampling.editing.edit_schedule``
    (ℓ₀ = ⌊s·T + ½⌋ of them without resampling, more with RePaint's jumps; 0 when ℓ₀ = 0)."""
    if strength is None:
        return num_timesteps
    from impl.sampling.editing import edit_schedule

    levels = edit_schedule(
        num_timesteps, strength=strength, jump_length=jump_length, resample_jumps=resample_jumps
    )
    return sum(1 for here, there in itertools.pairwise(levels) if there < here)


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
    the strips of a ``num_steps``-step loop (0: an edit that runs no step, one-column strips) before
    anything is sampled; the trajectory writer, or None.  An existing trajectory folder is refused unless
    ``overwrite`` (it is then replaced as a whole when the new one is complete)."""
    from impl.sampling.trajectory import recorded_steps

    resolve_scale(grid_scale, image_hw, grid_shape(grid_images, *image_hw), name="--grid_scale")
    if save_trajectory is None:
        return None
    every = check_every(save_trajectory, "--save_trajectory")
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}")
    columns = len(recorded_steps(num_steps, every)) if num_steps else 1
    resolve_scale(grid_scale, image_hw, strip_shape(columns, *image_hw), name="--grid_scale")
    folder = trajectory_folder(npz)
    if not overwrite:
        check_new_trajectory_folder(folder)
    return TrajectoryWriter(folder, every, grid_scale, overwrite=overwrite)

"""Watching a progressive loop: step observers, and a recorder of every k-th step as uint8 on the CPU.

Every progressive loop (ancestral, DDIM, and any loop that yields the same per-step dicts, such as the
editing loops) yields one dict per step with ``sample`` (the step's output, x_{t−1}) and ``pred_xstart``
(the x̂₀ it predicted from x_t).  :func:`observed` passes each dict, with its step index (0 for the first
step, at t = T−1), to a :class:`StepObserver` and yields it on unchanged, so the loop's result does not
depend on whether anything watches it.

:class:`TrajectoryRecorder` keeps steps 0, k, 2k, … and always the last one, each as the uint8 NHWC
pixels :func:`to_uint8_nhwc` makes (the quantisation of the saved samples), on the CPU: at most
``ceil(steps / k) + 1`` copies of two uint8 batches, never the float tensors of the whole trajectory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = [
    "BatchStepObserver",
    "StepObserver",
    "Trajectory",
    "TrajectoryRecorder",
    "check_every",
    "observed",
    "recorded_steps",
    "to_uint8_nhwc",
]

StepDict = Mapping[str, torch.Tensor]


class StepObserver(Protocol):
    """Anything that watches a progressive loop's per-step dicts (step index 0 = the first step)."""

    def observe(self, step_index: int, out: StepDict) -> None: ...


class BatchStepObserver(StepObserver, Protocol):
    """A step observer over batches: ``begin_batch(first_index, size)`` before a batch's loop (its
    samples are ``first_index`` … ``first_index + size − 1`` of the run), ``end_batch()`` after it."""

    def begin_batch(self, first_index: int, size: int) -> None: ...

    def end_batch(self) -> None: ...


def to_uint8_nhwc(x: torch.Tensor) -> NDArray[np.uint8]:
    """Model-range NCHW images → uint8 NHWC on the CPU: ``round((clamp(x, −1, 1) + 1) · 127.5)``."""
    pixels = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    return np.ascontiguousarray(pixels.cpu().numpy())


def check_every(every: object, name: str = "every") -> int:
    """``every`` as a positive int (the recording interval k), else ValueError naming ``name``."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"{name} must be a positive integer (record every k-th step); got {every!r}")
    return every


def recorded_steps(num_steps: int, every: int) -> list[int]:
    """The step indices a :class:`TrajectoryRecorder` keeps from a loop of ``num_steps`` steps:
    0, k, 2k, … below ``num_steps``, and ``num_steps − 1`` (the last step) when it is not among them."""
    check_every(every)
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    steps = list(range(0, num_steps, every))
    return steps if steps[-1] == num_steps - 1 else [*steps, num_steps - 1]


@dataclass(frozen=True)
class Trajectory:
    """A recorded batch: ``steps`` the loop step indices kept, ``samples[s]`` / ``pred_xstart[s]`` the
    uint8 NHWC pixels (N, H, W, C) of step ``steps[s]``'s ``sample`` and ``pred_xstart``."""

    steps: tuple[int, ...]
    samples: tuple[NDArray[np.uint8], ...]
    pred_xstart: tuple[NDArray[np.uint8], ...]

    def of_sample(self, j: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        """Sample ``j``'s columns: its ``sample`` and its ``pred_xstart`` pixels, each (S, H, W, C)."""
        return np.stack([s[j] for s in self.samples]), np.stack([p[j] for p in self.pred_xstart])


class TrajectoryRecorder:
    """Keeps every ``every``-th step of one loop, and its last, as uint8 NHWC pixels on the CPU.

    ``observe`` must see the step indices 0, 1, 2, … in order; ``finish()`` returns the
    :class:`Trajectory`.  Between recorded steps it holds only references to the latest step's two
    tensors (in case that step is the last), which the loop itself keeps alive anyway.
    """

    def __init__(self, every: int) -> None:
        self.every = check_every(every)
        self._steps: list[int] = []
        self._samples: list[NDArray[np.uint8]] = []
        self._pred_xstart: list[NDArray[np.uint8]] = []
        self._next = 0
        self._latest: tuple[int, torch.Tensor, torch.Tensor] | None = None

    @property
    def steps_seen(self) -> int:
        """How many steps ``observe`` has seen (0: the loop ran no step, e.g. an edit at strength 0)."""
        return self._next

    def observe(self, step_index: int, out: StepDict) -> None:
        if step_index != self._next:
            raise ValueError(f"step_index must be {self._next} (steps in order from 0), got {step_index}")
        missing = [key for key in ("sample", "pred_xstart") if key not in out]
        if missing:
            raise ValueError(f"a recorded step dict needs 'sample' and 'pred_xstart'; it lacks {missing}")
        self._next += 1
        if step_index % self.every == 0:
            self._record(step_index, out["sample"], out["pred_xstart"])
            self._latest = None
        else:
            self._latest = (step_index, out["sample"], out["pred_xstart"])

    def _record(self, step_index: int, sample: torch.Tensor, pred_xstart: torch.Tensor) -> None:
        self._steps.append(step_index)
        self._samples.append(to_uint8_nhwc(sample))
        self._pred_xstart.append(to_uint8_nhwc(pred_xstart))

    def finish(self) -> Trajectory:
        """The recorded steps (the last step included); raises ValueError if no step was observed
        (check :attr:`steps_seen` first where a loop may run none)."""
        if self._latest is not None:
            self._record(*self._latest)
            self._latest = None
        if not self._steps:
            raise ValueError("the loop yielded no steps: there is no trajectory to record")
        return Trajectory(tuple(self._steps), tuple(self._samples), tuple(self._pred_xstart))


def observed(steps: Iterator[Any], observer: StepObserver | None) -> Iterator[Any]:
    """Yield a progressive loop's step dicts unchanged, showing each to ``observer`` (if any) first."""
    for index, out in enumerate(steps):
        if observer is not None:
            observer.observe(index, out)
        yield out

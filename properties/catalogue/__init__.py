"""The catalogue: one entry per paired function, impl (PyTorch) against reference (float64 NumPy).

One module per module of `reference/` (schedule, respacing, process, steps, objectives, gaussian,
timesteps, metrics: impl.evaluate's feature metrics, classifier_guidance: the guidance gradient) holds
that module's entries in ``ENTRIES``.  An
timesteps, guidance_free, and metrics: impl.evaluate's feature metrics) holds its entries in ``ENTRIES``.  An
entry (`properties.catalogue.entry.Entry`, built with keyword arguments) names the impl callable and
the reference function (imported directly), a Hypothesis strategy of inputs, how to call each side on a
drawn case (each side's result as a dict of float64 arrays) and its tolerance op, looked up per dtype
tier with `testing.tolerances.impl_vs_reference`.  The reference side takes a ``perturb`` applied to
every input and table entry, from which the comparison estimates how strongly rounding is amplified (see
`properties.compare`).  Per-step entries that differ only in the values each side is passed are built
by `properties.catalogue.builder.step_entry`.  docs/diffusion.md says how to add one.
"""

from __future__ import annotations

from properties.catalogue import (
    classifier_guidance,
    classifier_training,
    editing,
    gaussian,
    guidance_free,
    metrics,
    objectives,
    process,
    respacing,
    schedule,
    steps,
    timesteps,
)
from properties.catalogue.entry import Entry

CATALOGUE: tuple[Entry, ...] = (
    *schedule.ENTRIES,
    *respacing.ENTRIES,
    *process.ENTRIES,
    *steps.ENTRIES,
    *objectives.ENTRIES,
    *gaussian.ENTRIES,
    *timesteps.ENTRIES,
    *metrics.ENTRIES,
    *editing.ENTRIES,
    *classifier_training.ENTRIES,
    *classifier_guidance.ENTRIES,
    *guidance_free.ENTRIES,
)

_BY_NAME = {entry.name: entry for entry in CATALOGUE}  # names are unique: tested in test_catalogue


def entry_named(name: str) -> Entry:
    """The catalogue entry called `name` (the names docs/spec.md's index uses)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no catalogue entry named {name!r}; entries: {sorted(_BY_NAME)}") from None


__all__ = ["CATALOGUE", "Entry", "entry_named"]

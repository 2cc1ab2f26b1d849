"""The sample scorer ``iddpm train --eval_interval N`` calls on rank 0: Inception metrics of a sample batch.

``TrainingSampleScorer(reference, metrics, inception_weights)`` checks its arguments and finds the weights
when it is built (before training starts, so a bad flag fails at once); the network and the reference
statistics (cached beside the reference, see ``impl.evaluate.reference_stats``) load on the first call.
Calling it with uint8 NHWC samples returns ``sample_quality_report``'s dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from impl.evaluate.inception import InceptionExtractor
from impl.evaluate.inception_report import parse_metrics, sample_quality_report
from impl.evaluate.inception_weights import resolve_weights_path
from impl.evaluate.reference_stats import ReferenceStats, reference_statistics

__all__ = ["TrainingSampleScorer"]


class TrainingSampleScorer:
    """Scores sample batches against one reference with the Inception metrics asked for."""

    def __init__(
        self, reference: str, metrics: str = "fid", inception_weights: str = "", device: Any = "auto"
    ) -> None:
        self.metrics = parse_metrics(metrics)
        if self.metrics == ("digits",):
            raise ValueError("eval_metrics must name Inception metrics (fid,sfid,is,prc,kid), not digits")
        if not reference:
            raise ValueError("eval_reference is required with eval_interval > 0")
        if not (Path(reference).exists() or reference.startswith("digits")):
            raise FileNotFoundError(f"eval_reference {reference!r} does not exist")
        self.reference_spec = reference
        self.weights = resolve_weights_path(inception_weights or None)
        self.device = device
        self._extractor: InceptionExtractor | None = None
        self._reference: ReferenceStats | None = None

    def __call__(self, images_uint8_nhwc: NDArray[np.uint8]) -> dict[str, Any]:
        if self._extractor is None:
            self._extractor = InceptionExtractor(self.weights, device=self.device, progress=False)
        if self._reference is None:
            size = int(images_uint8_nhwc.shape[1]) if Path(self.reference_spec).is_dir() else None
            self._reference, _ = reference_statistics(self.reference_spec, self._extractor, image_size=size)
        features = self._extractor.extract(images_uint8_nhwc)
        return sample_quality_report(
            features, self._reference, self.metrics, feature_extractor=self._extractor.identity
        )

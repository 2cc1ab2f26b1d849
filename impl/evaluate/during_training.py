"""The sample scorer ``iddpm train --eval_interval N`` calls on rank 0: Inception metrics of a sample batch.

``TrainingSampleScorer(reference, metrics, inception_weights)`` is built before training starts: it checks
its arguments, finds (or downloads) the weights, loads the network and computes or loads the reference
statistics (cached beside the reference, see ``impl.evaluate.reference_stats``), so a bad flag or reference
fails before the first step.  Calling it with uint8 NHWC samples returns ``sample_quality_report``'s dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from impl.evaluate.inception import InceptionExtractor
from impl.evaluate.inception_report import parse_metrics, sample_quality_report
from impl.evaluate.reference_stats import reference_statistics

__all__ = ["TrainingSampleScorer"]


class TrainingSampleScorer:
    """Scores sample batches against one reference with the Inception metrics asked for."""

    def __init__(
        self,
        reference: str,
        metrics: str = "fid",
        inception_weights: str = "",
        *,
        device: Any = "auto",
        image_size: int | None = None,
    ) -> None:
        self.metrics = parse_metrics(metrics)
        if self.metrics == ("digits",):
            raise ValueError("eval_metrics must name Inception metrics (fid,sfid,is,prc,kid), not digits")
        if not reference:
            raise ValueError("eval_reference is required with eval_interval > 0")
        self.extractor = InceptionExtractor(inception_weights or None, device=device, progress=False)
        size = image_size if Path(reference).is_dir() else None
        self.reference, _ = reference_statistics(reference, self.extractor, image_size=size)

    def __call__(self, images_uint8_nhwc: NDArray[np.uint8]) -> dict[str, Any]:
        features = self.extractor.extract(images_uint8_nhwc)
        return sample_quality_report(
            features, self.reference, self.metrics, feature_extractor=self.extractor.identity
        )

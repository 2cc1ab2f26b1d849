"""The ``iddpm sample`` flags of classifier guidance (``--classifier``, ``--classifier_scale``, the
``--classifier_*`` flags of a plain state-dict file); see docs/guidance.md."""

from __future__ import annotations

import argparse

from impl.cli.options import _add_bool


def _add_classifier_guidance_flags(s: argparse.ArgumentParser) -> None:
    from impl.factory import classifier_defaults
    from impl.nn.classifier import CLASSIFIER_POOLS

    d = classifier_defaults()
    g = s.add_argument_group("classifier guidance (see docs/guidance.md)")
    g.add_argument(
        "--classifier",
        default="",
        metavar="PATH",
        help="guide with a noisy-image classifier: an `iddpm train_classifier` run (dir or "
        "checkpoints/step_N) or a state-dict file (.pt/.safetensors, flags from --classifier_*)",
    )
    g.add_argument(
        "--classifier_scale",
        type=float,
        default=1.0,
        help="s: the ancestral mean moves by s*Sigma*grad log p(y|x_t) (DDIM: eps - s*sqrt(1-abar)*grad); "
        "0: unguided",
    )
    _add_bool(g, "classifier_use_ema", False, "use the classifier run's (first) EMA weights")
    f = s.add_argument_group("classifier of a plain state-dict file (a classifier run records its own)")
    _add_bool(f, "classifier_use_fp16", d["classifier_use_fp16"], "trunk under float16 autocast on CUDA")
    f.add_argument("--classifier_width", type=int, default=d["classifier_width"])
    f.add_argument("--classifier_depth", type=int, default=d["classifier_depth"])
    f.add_argument("--classifier_attention_resolutions", default=d["classifier_attention_resolutions"])
    _add_bool(f, "classifier_use_scale_shift_norm", d["classifier_use_scale_shift_norm"], "FiLM norm")
    _add_bool(f, "classifier_resblock_updown", d["classifier_resblock_updown"], "residual down-sampling")
    f.add_argument(
        "--classifier_pool",
        default=d["classifier_pool"],
        choices=CLASSIFIER_POOLS,
        help="the head's pooling",
    )
    f.add_argument(
        "--classifier_num_classes",
        type=int,
        default=0,
        help="0: the model's classes when class-conditional, else 1000",
    )
    f.add_argument("--classifier_channel_mult", default="", help="'': the table of docs/classifier.md")
    f.add_argument("--classifier_num_head_channels", type=int, default=64)

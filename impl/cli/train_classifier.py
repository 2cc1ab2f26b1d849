"""The parser of ``iddpm train_classifier`` (parsing only: the work is ``impl.commands.train_classifier``)."""

from __future__ import annotations

from typing import Any

from impl.cli.options import _add_bool, _add_resume_flag


def add_train_classifier_parser(sub: Any) -> None:
    from impl.data.choices import DATA_LOADERS
    from impl.factory import add_dict_to_argparser, train_model_defaults
    from impl.factory.classifier_run_flags import NOISING_FLAGS, train_classifier_defaults
    from impl.nn.classifier import CLASSIFIER_POOLS
    from impl.runtime.precision import PRECISIONS
    from impl.train.classifier_config import ClassifierTrainConfig
    from impl.train.lr import LR_SCHEDULES

    d = ClassifierTrainConfig()
    p = sub.add_parser(
        "train_classifier",
        help="train a noisy-image classifier for guidance (no flags: a digits classifier in well under a "
        "minute on the CPU)",
        description="Train a noisy-image classifier on x_t = q_sample(x_0, t); see docs/guidance.md and "
        "docs/classifier.md.",
    )
    # the classifier's flags (in_channels, num_classes 0: from the data) and the noising diffusion's
    # (those of the model the classifier will guide)
    classifier = train_classifier_defaults()
    pool = classifier.pop("classifier_pool")
    add_dict_to_argparser(p, classifier)
    p.add_argument("--classifier_pool", default=pool, choices=CLASSIFIER_POOLS, help="the head's pooling")
    model_defaults = train_model_defaults()
    add_dict_to_argparser(p, {k: model_defaults[k] for k in NOISING_FLAGS})
    g = p.add_argument_group("training")
    g.add_argument("--data", "--data_dir", dest="data", default=d.data, help="labelled data (docs/data.md)")
    g.add_argument(
        "--val_data",
        "--val_data_dir",
        dest="val_data",
        default=None,
        help="labelled held-out images (default: digits:held_out for the digits, else none)",
    )
    g.add_argument("--val_samples", type=int, default=d.val_samples, help="held-out images per evaluation")
    g.add_argument(
        "--eval_interval",
        type=int,
        default=d.eval_interval,
        help="steps between held-out evaluations (0: at the end only)",
    )
    g.add_argument("--data_loader", default=d.data_loader, choices=DATA_LOADERS)
    g.add_argument("--num_workers", type=int, default=d.num_workers)
    g.add_argument("--out_dir", default=d.out_dir, help="run directory (default runs/<data>-<time>)")
    g.add_argument("--batch_size", type=int, default=d.batch_size, help="global batch (split across ranks)")
    g.add_argument("--microbatch", type=int, default=d.microbatch, help="per-rank microbatch; -1: off")
    g.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate (guided-diffusion: 3e-4)")
    g.add_argument("--weight_decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    g.add_argument("--max_steps", "--iterations", dest="max_steps", type=int, default=d.max_steps)
    g.add_argument(
        "--lr_anneal_steps", type=int, default=None, help="LR decay horizon (default: max_steps; 0: constant)"
    )
    g.add_argument("--lr_schedule", default=d.lr_schedule, choices=LR_SCHEDULES)
    g.add_argument("--ema_rate", default=d.ema_rate, help="comma-separated EMA rates ('': none)")
    g.add_argument("--grad_clip", type=float, default=d.grad_clip, help="max global grad norm; 0: off")
    g.add_argument("--precision", default=d.precision, choices=PRECISIONS)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--log_interval", type=int, default=d.log_interval)
    g.add_argument("--save_interval", type=int, default=d.save_interval, help="0: only at the end")
    g.add_argument("--keep_checkpoints", type=int, default=d.keep_checkpoints)
    _add_bool(g, "random_flip", d.random_flip, "flip images left-right at random")
    _add_bool(g, "progress", d.progress, "show a progress bar")
    g.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    _add_bool(g, "overwrite", False, "start a new run in a non-empty --out_dir, deleting the old run's files")
    _add_resume_flag(
        g,
        "continue a classifier run (PATH: run dir or checkpoint; bare: --out_dir)",
    )

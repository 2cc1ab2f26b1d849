"""impl.train: the trainer (loop, EMA, checkpoints, distributed glue) behind ``iddpm train``.

The precision names and policy and the autocast wrapper live in ``impl.runtime.precision`` (shared with
sampling); they are re-exported here as before.
"""

from impl.runtime.precision import PRECISIONS, AutocastModel, PrecisionPolicy
from impl.train.batches import InMemoryData
from impl.train.checkpoint import (
    TrainingCheckpoint,
    find_checkpoint_dir,
    load_training_checkpoint,
    save_training_checkpoint,
)
from impl.train.config import SCHEDULE_SAMPLERS, TrainConfig, parse_ema_rates
from impl.train.distributed import DistContext, init_from_env
from impl.train.ema import EMA
from impl.train.errors import CheckpointError, TrainError
from impl.train.lr import annealed_lr
from impl.train.signals import StopFlag
from impl.train.trainer import Trainer, TrainResult

__all__ = [
    "EMA",
    "PRECISIONS",
    "SCHEDULE_SAMPLERS",
    "AutocastModel",
    "CheckpointError",
    "DistContext",
    "InMemoryData",
    "PrecisionPolicy",
    "StopFlag",
    "TrainConfig",
    "TrainError",
    "TrainResult",
    "Trainer",
    "TrainingCheckpoint",
    "annealed_lr",
    "find_checkpoint_dir",
    "init_from_env",
    "load_training_checkpoint",
    "parse_ema_rates",
    "save_training_checkpoint",
]

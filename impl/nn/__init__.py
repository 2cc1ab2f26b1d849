"""impl.nn: the U-Net, the noisy-image classifier, their blocks, state-dict I/O (flags: `impl.factory`)."""

from impl.nn.attention import (
    ATTENTION_BACKENDS,
    AttentionBackend,
    AttentionBlock,
    naive_attention,
    sdpa_attention,
)
from impl.nn.checkpoint_io import (
    CheckpointMismatchError,
    CheckpointReadError,
    diagnose_mismatch,
    infer_unet_config,
    load_state_strictly,
    read_state_dict,
    save_checkpoint,
)
from impl.nn.classifier import CLASSIFIER_POOLS, AttentionPool2d, ClassifierPool, EncoderUNetModel
from impl.nn.embedding import timestep_embedding
from impl.nn.layers import Downsample, GroupNorm32, Upsample
from impl.nn.resblock import ResBlock, TimestepBlock, TimestepEmbedSequential
from impl.nn.unet import UNetModel, set_attention_backend, set_norm_recompute

__all__ = [
    "ATTENTION_BACKENDS",
    "CLASSIFIER_POOLS",
    "AttentionBackend",
    "AttentionBlock",
    "AttentionPool2d",
    "CheckpointMismatchError",
    "CheckpointReadError",
    "ClassifierPool",
    "Downsample",
    "EncoderUNetModel",
    "GroupNorm32",
    "ResBlock",
    "TimestepBlock",
    "TimestepEmbedSequential",
    "UNetModel",
    "Upsample",
    "diagnose_mismatch",
    "infer_unet_config",
    "load_state_strictly",
    "naive_attention",
    "read_state_dict",
    "save_checkpoint",
    "sdpa_attention",
    "set_attention_backend",
    "set_norm_recompute",
    "timestep_embedding",
]

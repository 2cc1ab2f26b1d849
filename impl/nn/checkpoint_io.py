"""Reading, writing and loading U-Net state dicts (``.pt`` and ``.safetensors``) with diagnosable errors.

- :func:`read_state_dict` reads a file, unwraps a state dict nested under ``"model"``/``"state_dict"``/
  ``"ema"``…, and strips DDP (``module.``) and ``torch.compile`` (``_orig_mod.``) prefixes.
- :func:`infer_unet_config` reads the architecture off the parameter names and shapes.
- :func:`load_state_strictly` loads the weights into a model strictly; a mismatch raises a
  :class:`CheckpointMismatchError` that names the flags that probably differ.  (Building the model from
  flags first is :func:`impl.factory.load_checkpoint`: the network layer knows no flags factory.)
- :func:`save_checkpoint` writes a state dict with :func:`impl.atomic.atomic_write`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from impl.atomic import atomic_write
from impl.nn.checkpoint_files import CheckpointReadError, read_checkpoint_file
from impl.nn.unet import UNetModel

__all__ = [
    "NESTED_STATE_DICT_KEYS",
    "CheckpointMismatchError",
    "CheckpointReadError",
    "diagnose_mismatch",
    "infer_unet_config",
    "load_state_strictly",
    "read_state_dict",
    "save_checkpoint",
]

NESTED_STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "ema", "ema_state_dict", "ema_model")
"""Keys under which a training checkpoint may hold a state dict (tried when the file is not one itself)."""

_STRIPPED_PREFIXES = ("module.", "_orig_mod.")

Shapes = Mapping[str, tuple[int, ...]]


class CheckpointMismatchError(ValueError):
    """The checkpoint's parameter names/shapes do not fit the model; the message names the likely flags."""


def _is_state_dict(obj: object) -> bool:
    if not isinstance(obj, Mapping) or len(obj) == 0:
        return False
    return all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _STRIPPED_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def read_state_dict(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu", key: str | None = None
) -> dict[str, torch.Tensor]:
    """The state dict stored in a ``.pt``/``.pth``/``.bin`` (``torch.load``) or ``.safetensors`` file.

    ``key`` selects a nested state dict; without it a file that is not itself a state dict must hold
    exactly one of :data:`NESTED_STATE_DICT_KEYS`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    obj: Any = read_checkpoint_file(path, map_location)
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            found = sorted(obj) if isinstance(obj, Mapping) else type(obj).__name__
            raise ValueError(f"key={key!r} not found in checkpoint {path}; it holds {found}")
        obj = obj[key]
    elif not _is_state_dict(obj):
        if not isinstance(obj, Mapping):
            raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
        nested = [k for k in NESTED_STATE_DICT_KEYS if k in obj and _is_state_dict(obj[k])]
        if len(nested) != 1:
            raise ValueError(
                f"checkpoint {path} is not a state dict and holds "
                + ("several state dicts " + str(nested) if nested else f"keys {sorted(map(str, obj))}")
                + "; pass key=... to choose one"
            )
        obj = obj[nested[0]]
    if not _is_state_dict(obj):
        raise ValueError(f"checkpoint {path} (key={key!r}) is not a mapping of names to tensors")
    return _strip_prefixes({str(k): v for k, v in obj.items()})


def save_checkpoint(
    state: nn.Module | Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a (model's) state dict to ``path`` atomically: ``.safetensors`` by suffix, else ``torch.save``.

    The file appears complete or not at all (:func:`impl.atomic.atomic_write`).
    ``metadata`` (strings) goes into the safetensors header; it is not allowed for ``.pt``.
    """
    path = Path(path)
    tensors = state.state_dict() if isinstance(state, nn.Module) else dict(state)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        atomic_write(path, save(tensors, metadata=dict(metadata) if metadata is not None else None))
    else:
        if metadata is not None:
            raise ValueError("metadata is only supported for .safetensors files")
        atomic_write(path, lambda handle: torch.save(tensors, handle))
    return path


def _block_indices(shapes: Shapes, name: str) -> list[int]:
    return sorted({int(k.split(".")[1]) for k in shapes if k.startswith(f"{name}.")})


def _has(shapes: Shapes, prefix: str, leaf: str) -> bool:
    return f"{prefix}.{leaf}" in shapes


def infer_unet_config(state: Mapping[str, torch.Tensor] | Shapes, *, num_heads: int = 4) -> dict[str, Any]:
    """:class:`UNetModel` keyword arguments whose state-dict layout equals ``state``'s.

    Weights do not store the head count, so ``num_heads`` (4 in every released model) is taken as given.
    Raises ``ValueError`` when no U-Net of this family has the layout.
    """
    shapes: dict[str, tuple[int, ...]] = {
        k: tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v) for k, v in state.items()
    }
    required = (
        "time_embed.0.weight",
        "input_blocks.0.0.weight",
        "out.2.weight",
        "middle_block.0.emb_layers.1.weight",
        "middle_block.0.out_layers.3.weight",
    )
    absent = [k for k in required if k not in shapes]
    if absent:
        raise ValueError(f"not an improved-diffusion U-Net state dict: missing {absent}")
    first = shapes["input_blocks.0.0.weight"]
    model_channels = shapes["time_embed.0.weight"][1]
    middle_out = shapes["middle_block.0.out_layers.3.weight"][0]
    base: dict[str, Any] = {
        "in_channels": first[1],
        "model_channels": model_channels,
        "out_channels": shapes["out.2.weight"][0],
        "dims": len(first) - 2,
        "num_classes": shapes["label_emb.weight"][0] if "label_emb.weight" in shapes else None,
        "use_scale_shift_norm": shapes["middle_block.0.emb_layers.1.weight"][0] == 2 * middle_out,
        "num_heads": num_heads,
    }
    num_input_blocks = len(range(max(_block_indices(shapes, "input_blocks")) + 1))
    for levels in range(1, num_input_blocks + 1):
        if num_input_blocks % levels or num_input_blocks // levels < 2:
            continue
        per_level = num_input_blocks // levels  # num_res_blocks + 1 (a level's res blocks + its downsample)
        num_res_blocks = per_level - 1
        config = _candidate_config(shapes, base, levels, num_res_blocks)
        if config is not None and _layout_matches(config, shapes):
            return config
    raise ValueError("the state dict has U-Net names but no U-Net configuration reproduces its layout")


def _candidate_config(
    shapes: Shapes, base: dict[str, Any], levels: int, num_res_blocks: int
) -> dict[str, Any] | None:
    per_level = num_res_blocks + 1
    mults: list[float] = []
    attention_ds: list[int] = []
    for level in range(levels):
        res = f"input_blocks.{1 + level * per_level}.0"
        if not _has(shapes, res, "out_layers.3.weight"):
            return None
        width = shapes[f"{res}.out_layers.3.weight"][0]
        mult = width / base["model_channels"]
        mults.append(int(mult) if mult.is_integer() else mult)
        if _has(shapes, f"input_blocks.{1 + level * per_level}.1", "qkv.weight"):
            attention_ds.append(2**level)
    resblock_updown = False
    conv_resample = True
    if levels > 1:
        down = f"input_blocks.{per_level}.0"
        resblock_updown = _has(shapes, down, "in_layers.0.weight")
        conv_resample = _has(shapes, down, "op.weight") or resblock_updown
    return {
        **base,
        "num_res_blocks": num_res_blocks,
        "channel_mult": tuple(mults),
        "attention_resolutions": tuple(attention_ds),
        "conv_resample": conv_resample,
        "resblock_updown": resblock_updown,
    }


def _layout_matches(config: dict[str, Any], shapes: Shapes) -> bool:
    try:
        with torch.device("meta"):
            candidate = UNetModel(**config)
    except ValueError:
        return False
    return {k: tuple(v.shape) for k, v in candidate.state_dict().items()} == dict(shapes)


def _describe_config_differences(
    model_config: Mapping[str, Any], ckpt_config: Mapping[str, Any]
) -> list[str]:
    hints: list[str] = []

    def differs(name: str) -> bool:
        return bool(model_config.get(name) != ckpt_config.get(name))

    def versus(name: str) -> str:
        return f"checkpoint {ckpt_config.get(name)}, model {model_config.get(name)}"

    if differs("model_channels"):
        hints.append(f"--num_channels: {versus('model_channels')}")
    if differs("in_channels"):
        hints.append(f"--in_channels: {versus('in_channels')}")
    if differs("out_channels"):
        learned = ckpt_config["out_channels"] == 2 * ckpt_config["in_channels"]
        hints.append(
            f"--learn_sigma: checkpoint outputs {ckpt_config['out_channels']} channels, model "
            f"{model_config['out_channels']} (use --learn_sigma {learned})"
        )
    if differs("num_classes"):
        classes = ckpt_config["num_classes"]
        null_row = (
            f" (or --num_classes {classes - 1} --class_dropout_prob P if its last row is a classifier-free "
            "guidance null label)"
            if classes is not None and classes > 1
            else ""
        )
        hints.append(
            "--class_cond False: the checkpoint is unconditional"
            if classes is None
            else f"--class_cond True --num_classes {classes}: the checkpoint is class-conditional{null_row}"
        )
    if differs("num_res_blocks"):
        hints.append(f"--num_res_blocks: {versus('num_res_blocks')}")
    if differs("channel_mult"):
        hints.append(
            f"--channel_mult / --image_size: checkpoint levels {ckpt_config['channel_mult']}, "
            f"model {model_config['channel_mult']}"
        )
    if set(model_config.get("attention_resolutions", ())) != set(ckpt_config["attention_resolutions"]):
        hints.append(
            "--attention_resolutions (= image_size // downsample factor): checkpoint has attention at "
            f"downsample factors {sorted(ckpt_config['attention_resolutions'])}, model at "
            f"{sorted(model_config.get('attention_resolutions', ()))}"
        )
    if differs("use_scale_shift_norm"):
        hints.append(f"--use_scale_shift_norm {ckpt_config['use_scale_shift_norm']}")
    if differs("resblock_updown"):
        hints.append(f"--resblock_updown {ckpt_config['resblock_updown']}")
    if differs("conv_resample"):
        hints.append(f"conv_resample={ckpt_config['conv_resample']}")
    return hints


def _pattern_hints(model_shapes: Shapes, ckpt_shapes: Shapes) -> list[str]:
    """Hints from key/shape patterns alone (when the checkpoint's architecture cannot be inferred)."""
    hints: list[str] = []
    missing = [k for k in model_shapes if k not in ckpt_shapes]
    unexpected = [k for k in ckpt_shapes if k not in model_shapes]
    wrong = [k for k in model_shapes if k in ckpt_shapes and model_shapes[k] != ckpt_shapes[k]]
    if "label_emb.weight" in missing:
        hints.append("--class_cond False: the checkpoint has no label_emb (it is unconditional)")
    if "label_emb.weight" in unexpected:
        hints.append(
            f"--class_cond True --num_classes {ckpt_shapes['label_emb.weight'][0]}: "
            "the checkpoint has label_emb"
        )
    if "label_emb.weight" in wrong:
        hints.append(f"--num_classes {ckpt_shapes['label_emb.weight'][0]}")
    if "time_embed.0.weight" in wrong:
        hints.append(f"--num_channels {ckpt_shapes['time_embed.0.weight'][1]}")
    if (
        "input_blocks.0.0.weight" in wrong
        and model_shapes["input_blocks.0.0.weight"][1] != ckpt_shapes["input_blocks.0.0.weight"][1]
    ):
        hints.append(f"--in_channels {ckpt_shapes['input_blocks.0.0.weight'][1]}")
    if "out.2.weight" in wrong:
        out_ch, in_ch = ckpt_shapes["out.2.weight"][0], ckpt_shapes.get("input_blocks.0.0.weight", (0, 0))[1]
        hints.append(f"--learn_sigma {out_ch == 2 * in_ch}: the checkpoint outputs {out_ch} channels")
    if any(k.endswith("emb_layers.1.weight") for k in wrong):
        k = next(k for k in wrong if k.endswith("emb_layers.1.weight"))
        out_key = k.replace("emb_layers.1.weight", "out_layers.3.weight")
        if out_key in ckpt_shapes:
            hints.append(f"--use_scale_shift_norm {ckpt_shapes[k][0] == 2 * ckpt_shapes[out_key][0]}")
    attention_leaves = (".qkv.", ".proj_out.", ".norm.")
    if any(any(a in k for a in attention_leaves) for k in missing + unexpected):
        hints.append("--attention_resolutions (attention blocks are at different places)")
    if _block_indices(model_shapes, "input_blocks") != _block_indices(ckpt_shapes, "input_blocks"):
        hints.append(
            "--num_res_blocks / --image_size / --channel_mult: the checkpoint has "
            f"{len(_block_indices(ckpt_shapes, 'input_blocks'))} input blocks, the model "
            f"{len(_block_indices(model_shapes, 'input_blocks'))}"
        )
    if any(".op." in k or ".conv." in k for k in missing + unexpected):
        hints.append("--resblock_updown / conv_resample (resampling layers differ)")
    if not hints and wrong:
        hints.append("--num_channels / --channel_mult (layer widths differ)")
    return hints


def _model_config(model: nn.Module) -> dict[str, Any] | None:
    if not isinstance(model, UNetModel):
        return None
    return {
        "in_channels": model.in_channels,
        "model_channels": model.model_channels,
        "out_channels": model.out_channels,
        "num_res_blocks": model.num_res_blocks,
        "channel_mult": tuple(model.channel_mult),
        "attention_resolutions": tuple(model.attention_resolutions),
        "num_classes": model.num_classes,
        "use_scale_shift_norm": model.use_scale_shift_norm,
        "resblock_updown": model.resblock_updown,
        "conv_resample": model.conv_resample,
    }


def diagnose_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """``None`` when ``state`` fits ``model`` exactly (names, shapes), else a message naming likely flags."""
    model_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ckpt_shapes = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in model_shapes if k not in ckpt_shapes]
    unexpected = [k for k in ckpt_shapes if k not in model_shapes]
    wrong = [k for k in model_shapes if k in ckpt_shapes and model_shapes[k] != ckpt_shapes[k]]
    if not (missing or unexpected or wrong):
        return None

    def listing(keys: list[str]) -> str:
        return ", ".join(keys[:4]) + (f", … ({len(keys)} in all)" if len(keys) > 4 else "")

    lines = ["the checkpoint does not fit the model:"]
    if missing:
        lines.append(f"  missing in the checkpoint: {listing(missing)}")
    if unexpected:
        lines.append(f"  unexpected in the checkpoint: {listing(unexpected)}")
    if wrong:
        details = [f"{k} (checkpoint {ckpt_shapes[k]}, model {model_shapes[k]})" for k in wrong]
        lines.append(f"  shape mismatches: {listing(details)}")
    hints: list[str] = []
    model_config = _model_config(model)
    if model_config is not None:
        try:
            hints = _describe_config_differences(model_config, infer_unet_config(ckpt_shapes))
        except ValueError:
            hints = []
    if not hints:
        hints = _pattern_hints(model_shapes, ckpt_shapes)
    if hints:
        lines.append("flags that probably differ:")
        lines.extend(f"  {h}" for h in hints)
    return "\n".join(lines)


def load_state_strictly(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str | os.PathLike[str]
) -> nn.Module:
    """Load ``state`` into ``model`` strictly and return the model in eval mode.

    Any missing/unexpected key or shape mismatch raises :class:`CheckpointMismatchError`, prefixed with
    ``source`` (the file the state came from), naming the flags that probably differ.
    """
    message = diagnose_mismatch(model, state)
    if message is not None:
        raise CheckpointMismatchError(f"{source}: {message}")
    model.load_state_dict(state, strict=True)
    return model.eval()

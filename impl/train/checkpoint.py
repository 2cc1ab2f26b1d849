"""Training checkpoints in the run directory.

Layout (one directory per saved step, made visible by a single atomic rename)::

    <run_dir>/checkpoints/step_0001000/model.safetensors          raw weights (model state dict)
                                      ema_0.9999.safetensors      one per EMA rate (full state dict)
                                      optimizer.safetensors       AdamW moments (+ GradScaler state in JSON)
                                      sampler.safetensors         timestep-sampler loss history, if any
                                      state.json                  step, config, RNG states, optimizer groups
    <run_dir>/checkpoints/latest.json                             {"step": 1000, "dir": "step_0001000"}

A crash mid-write leaves only a ``.tmp-*`` directory behind, which readers ignore, so the previous
checkpoint stays the latest loadable one.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from impl.train.atomic import atomic_save_safetensors, atomic_write_json, fsync_dir
from impl.train.config import ema_rate_name
from impl.train.errors import CheckpointError

CHECKPOINT_DIRNAME = "checkpoints"
LATEST_FILENAME = "latest.json"
STATE_FILENAME = "state.json"
FORMAT_VERSION = 1


@dataclass
class TrainingCheckpoint:
    """Everything needed to continue a run exactly."""

    step: int
    config: dict[str, Any]
    model: dict[str, torch.Tensor]
    emas: dict[float, dict[str, torch.Tensor]]
    optimizer: dict[str, Any] | None = None
    sampler: dict[str, torch.Tensor] = field(default_factory=dict)
    scaler: dict[str, Any] | None = None
    rng: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def step_dirname(step: int) -> str:
    return f"step_{step:07d}"


def capture_rng_state() -> dict[str, Any]:
    """The global torch RNG states (CPU and every CUDA device), base64-encoded for JSON."""
    state: dict[str, Any] = {"torch_cpu": _b64(torch.get_rng_state())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["torch_cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    if "torch_cpu" in state:
        torch.set_rng_state(_unb64(state["torch_cpu"]))
    cuda_states = state.get("torch_cuda")
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([_unb64(s) for s in cuda_states])


def _b64(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _unb64(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()


def flatten_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``state.<idx>.<key>``) and a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    per_param: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        per_param.setdefault(int(idx), {})[key] = value
    for idx, values in rest.get("scalars", {}).items():
        per_param.setdefault(int(idx), {}).update(values)
    return {"state": per_param, "param_groups": rest["param_groups"]}


def save_training_checkpoint(run_dir: Path, ckpt: TrainingCheckpoint, keep: int = 2) -> Path:
    """Write ``ckpt`` as ``<run_dir>/checkpoints/step_N`` atomically, point latest.json at it, prune."""
    root = run_dir / CHECKPOINT_DIRNAME
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dirname(ckpt.step)
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    atomic_save_safetensors(tmp / "model.safetensors", ckpt.model, {"step": str(ckpt.step)})
    for rate, state in ckpt.emas.items():
        ema_path = tmp / f"ema_{ema_rate_name(rate)}.safetensors"
        atomic_save_safetensors(ema_path, state, {"ema_rate": str(rate)})
    opt_rest: dict[str, Any] | None = None
    if ckpt.optimizer is not None:
        opt_tensors, opt_rest = flatten_optimizer_state(ckpt.optimizer)
        atomic_save_safetensors(tmp / "optimizer.safetensors", opt_tensors)
    if ckpt.sampler:
        atomic_save_safetensors(tmp / "sampler.safetensors", ckpt.sampler)
    meta = {
        "format_version": FORMAT_VERSION,
        "step": ckpt.step,
        "config": ckpt.config,
        "ema_rates": [float(r) for r in ckpt.emas],
        "optimizer": opt_rest,
        "scaler": ckpt.scaler,
        "rng": ckpt.rng,
    }
    atomic_write_json(tmp / STATE_FILENAME, meta)
    fsync_dir(tmp)
    if final.exists():
        old = root / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    fsync_dir(root)
    atomic_write_json(root / LATEST_FILENAME, {"step": ckpt.step, "dir": final.name})
    _prune(root, keep=keep, protect=final)
    return final


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    found: list[tuple[int, Path]] = []
    if not root.is_dir():
        return found
    for child in root.iterdir():
        if child.name.startswith("step_") and (child / STATE_FILENAME).is_file():
            try:
                found.append((int(child.name[len("step_") :]), child))
            except ValueError:
                continue
    return sorted(found)


def _prune(root: Path, keep: int, protect: Path) -> None:
    complete = list_checkpoints(root)
    for _, path in complete[: max(len(complete) - keep, 0)]:
        if path != protect:
            shutil.rmtree(path, ignore_errors=True)
    for child in root.iterdir():
        if child.name.startswith(".step_") and (".tmp-" in child.name or ".old-" in child.name):
            shutil.rmtree(child, ignore_errors=True)


def find_checkpoint_dir(path: Path) -> Path:
    """Resolve a run directory, its ``checkpoints`` folder or one ``step_N`` folder to a checkpoint folder.

    Prefers latest.json; falls back to the highest complete ``step_N`` if latest.json is missing or bad.
    """
    if (path / STATE_FILENAME).is_file():
        return path
    root = path if path.name == CHECKPOINT_DIRNAME else path / CHECKPOINT_DIRNAME
    if not path.exists():
        raise FileNotFoundError(f"checkpoint path {str(path)!r} does not exist")
    latest = root / LATEST_FILENAME
    if latest.is_file():
        try:
            pointer = json.loads(latest.read_text())
            candidate = root / str(pointer["dir"])
            if (candidate / STATE_FILENAME).is_file():
                return candidate
        except (OSError, ValueError, KeyError, TypeError):
            pass
    complete = list_checkpoints(root)
    if not complete:
        raise CheckpointError(
            f"no complete checkpoint under {str(path)!r} (expected {CHECKPOINT_DIRNAME}/step_N)"
        )
    return complete[-1][1]


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint file {str(path)!r} is corrupt: {exc}") from None


def read_state_json(ckpt_dir: Path) -> dict[str, Any]:
    try:
        meta = json.loads((ckpt_dir / STATE_FILENAME).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{str(ckpt_dir)!r} has no {STATE_FILENAME}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{str(ckpt_dir / STATE_FILENAME)!r} is corrupt: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{str(ckpt_dir)!r} is not a checkpoint of format version {FORMAT_VERSION}")
    return meta


def load_training_checkpoint(path: Path, *, with_training_state: bool = True) -> TrainingCheckpoint:
    """Read a checkpoint (run dir / checkpoints dir / step dir); training state is optional for sampling."""
    ckpt_dir = find_checkpoint_dir(path)
    meta = read_state_json(ckpt_dir)
    try:
        step = int(meta["step"])
        config = dict(meta["config"])
        rates = [float(r) for r in meta["ema_rates"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{str(ckpt_dir / STATE_FILENAME)!r} lacks a field: {exc}") from None
    emas = {rate: _load_tensors(ckpt_dir / f"ema_{ema_rate_name(rate)}.safetensors") for rate in rates}
    ckpt = TrainingCheckpoint(
        step=step,
        config=config,
        model=_load_tensors(ckpt_dir / "model.safetensors"),
        emas=emas,
        scaler=meta.get("scaler"),
        rng=dict(meta.get("rng") or {}),
        path=ckpt_dir,
    )
    if with_training_state:
        if meta.get("optimizer") is not None:
            ckpt.optimizer = unflatten_optimizer_state(
                _load_tensors(ckpt_dir / "optimizer.safetensors"), meta["optimizer"]
            )
        if (ckpt_dir / "sampler.safetensors").is_file():
            ckpt.sampler = _load_tensors(ckpt_dir / "sampler.safetensors")
    return ckpt

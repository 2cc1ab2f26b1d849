"""Training checkpoints in the run directory.

Layout (one directory per saved step, made visible by a single atomic rename)::

    <run_dir>/checkpoints/step_0001000/model.safetensors          raw weights (model state dict)
                                      ema_0.9999.safetensors      one per EMA rate (full state dict)
                                      optimizer.safetensors       AdamW moments (+ GradScaler state in JSON)
                                      sampler.safetensors         timestep-sampler loss history, if any
                                      state.json                  step, config, RNG states, optimizer groups
    <run_dir>/checkpoints/latest.json                             {"step": 1000, "dir": "step_0001000"}

A save never touches a complete checkpoint before the new one is complete: the new step is written into a
hidden ``.step_N.tmp-*`` folder, renamed to a name no other folder has (``step_N``, or ``step_N.2``,
``step_N.3``… when step N was saved before, e.g. by a run resumed from an earlier checkpoint), then
``latest.json`` is flipped to it, and only then are older checkpoints pruned (each renamed to a hidden
``.step_N.del-*`` name first, so a half-deleted folder is never mistaken for a checkpoint).  A kill at any
instant therefore leaves ``latest.json`` naming a complete checkpoint (``tests/reliability`` kills a save
at each of its file operations in turn).
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
from safetensors.torch import load_file, save

from impl.atomic import atomic_write, fsync_dir, write_json
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


def save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write CPU-contiguous copies of ``tensors`` as one safetensors file with :func:`atomic_write`."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, save(cpu, metadata=metadata))


def _write_checkpoint_files(folder: Path, ckpt: TrainingCheckpoint) -> None:
    save_tensors(folder / "model.safetensors", ckpt.model, {"step": str(ckpt.step)})
    for rate, state in ckpt.emas.items():
        save_tensors(folder / f"ema_{ema_rate_name(rate)}.safetensors", state, {"ema_rate": str(rate)})
    opt_rest: dict[str, Any] | None = None
    if ckpt.optimizer is not None:
        opt_tensors, opt_rest = flatten_optimizer_state(ckpt.optimizer)
        save_tensors(folder / "optimizer.safetensors", opt_tensors)
    if ckpt.sampler:
        save_tensors(folder / "sampler.safetensors", ckpt.sampler)
    meta = {
        "format_version": FORMAT_VERSION,
        "step": ckpt.step,
        "config": ckpt.config,
        "ema_rates": [float(r) for r in ckpt.emas],
        "optimizer": opt_rest,
        "scaler": ckpt.scaler,
        "rng": ckpt.rng,
    }
    write_json(folder / STATE_FILENAME, meta)  # last: a folder with state.json is complete
    fsync_dir(folder)


def _unused_name(root: Path, step: int) -> Path:
    """``step_N``, or the first free ``step_N.k`` (k = 2, 3, …) when step N was saved before."""
    base = root / step_dirname(step)
    candidate, k = base, 1
    while candidate.exists():
        k += 1
        candidate = base.with_name(f"{base.name}.{k}")
    return candidate


def save_training_checkpoint(run_dir: Path, ckpt: TrainingCheckpoint, keep: int = 2) -> Path:
    """Write ``ckpt`` under ``<run_dir>/checkpoints``, point latest.json at it, then prune to ``keep``.

    At every instant of the save (and of a kill during it) ``latest.json`` names a complete checkpoint:
    the new one is complete before it gets a visible name, and nothing old is removed before the flip.
    A failure (a full disk) removes the partial folder and re-raises.
    """
    root = run_dir / CHECKPOINT_DIRNAME
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{step_dirname(ckpt.step)}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_checkpoint_files(tmp, ckpt)
        final = _unused_name(root, ckpt.step)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(root)
    write_json(root / LATEST_FILENAME, {"step": ckpt.step, "dir": final.name})
    _prune(root, keep=keep, protect=final)
    return final


def _parse_dirname(name: str) -> tuple[int, int] | None:
    """``(step, version)`` of ``step_N`` (version 1) or ``step_N.k``; None for any other name."""
    if not name.startswith("step_"):
        return None
    digits, _, version = name[len("step_") :].partition(".")
    if not digits.isdigit() or not (version == "" or version.isdigit()):
        return None
    return int(digits), int(version or 1)


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints under ``root`` as ``(step, folder)``, oldest first (re-saves of a step
    after the earlier saves of that step)."""
    found: list[tuple[tuple[int, int], Path]] = []
    if not root.is_dir():
        return []
    for child in root.iterdir():
        key = _parse_dirname(child.name)
        if key is not None and (child / STATE_FILENAME).is_file():
            found.append((key, child))
    return [(key[0], path) for key, path in sorted(found)]


def _prune(root: Path, keep: int, protect: Path) -> None:
    """Remove earlier saves of ``protect``'s step, all but the newest ``keep`` other complete checkpoints
    (never ``protect``), stale partial folders and temporaries; each folder goes to a hidden name first,
    so a half-removed one is never read as a checkpoint."""
    complete = list_checkpoints(root)
    step = next(s for s, path in complete if path == protect)
    # earlier saves of the protected step are superseded by it (a run resumed from an earlier checkpoint)
    superseded = [path for s, path in complete if s == step and path != protect]
    others = [path for _, path in complete if path not in superseded]
    for path in superseded + others[: max(len(others) - keep, 0)]:
        if path != protect:
            doomed = root / f".{path.name}.del-{os.getpid()}"
            os.replace(path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
    for child in root.iterdir():
        if child.name.startswith(".step_") and (".tmp-" in child.name or ".del-" in child.name):
            shutil.rmtree(child, ignore_errors=True)
        elif child.name.startswith(".") and child.name.endswith(".tmp") and child.is_file():
            child.unlink(missing_ok=True)  # an atomic_write temporary (latest.json) left by a kill


def find_checkpoint_dir(path: Path) -> Path:
    """Resolve a run directory, its ``checkpoints`` folder or one ``step_N`` folder to a checkpoint folder.

    Prefers latest.json, whose ``dir`` must name a checkpoint folder directly inside ``checkpoints/``
    (anything else, such as a path into another run, is refused); falls back to the highest complete
    ``step_N`` if latest.json is missing, unreadable or names a folder that is not there.
    """
    if (path / STATE_FILENAME).is_file():
        return path
    root = path if path.name == CHECKPOINT_DIRNAME else path / CHECKPOINT_DIRNAME
    if not path.exists():
        raise FileNotFoundError(f"checkpoint path {str(path)!r} does not exist")
    latest = root / LATEST_FILENAME
    pointer: Any = None
    if latest.is_file():
        try:
            pointer = json.loads(latest.read_text())
        except (OSError, ValueError):
            pointer = None
    if isinstance(pointer, dict) and "dir" in pointer:
        name = pointer["dir"]
        if not isinstance(name, str) or _parse_dirname(name) is None or Path(name).name != name:
            raise CheckpointError(
                f"{str(latest)!r} names {name!r}, which is not a checkpoint folder inside "
                f"{str(root)!r}; give one explicitly ({str(root / 'step_N')!r}) or delete {LATEST_FILENAME}"
            )
        candidate = root / name
        if (candidate / STATE_FILENAME).is_file():
            return candidate
    complete = list_checkpoints(root)
    if not complete:
        raise CheckpointError(
            f"no complete checkpoint under {str(path)!r} (expected {CHECKPOINT_DIRNAME}/step_N)"
        )
    return complete[-1][1]


def earlier_checkpoint_hint(ckpt_dir: Path) -> str:
    """``"; the previous checkpoint … can be used explicitly: PATH"`` when ``ckpt_dir`` has an older
    complete sibling, else ``""`` (appended to the error of a checkpoint that cannot be read)."""
    older = [p for _, p in list_checkpoints(ckpt_dir.parent) if p != ckpt_dir]
    if not older or ckpt_dir.parent.name != CHECKPOINT_DIRNAME:
        return ""
    return (
        f"; the previous checkpoint is {str(older[-1])!r}: pass it explicitly "
        f"(train --resume {older[-1]} or sample --checkpoint {older[-1]})"
    )


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
    _check_state_types(meta, str(ckpt_dir / STATE_FILENAME))
    return meta


RUN_KIND_CLASSIFIER = "classifier"
"""``config["kind"]`` of a classifier run (``iddpm train_classifier``); a diffusion-model run has none."""

_KIND_USE = {
    None: "a diffusion-model run (resume it with `iddpm train --resume`, sample it with `iddpm sample`)",
    RUN_KIND_CLASSIFIER: "a classifier run (resume it with `iddpm train_classifier --resume`, guide "
    "sampling with it through `iddpm sample --classifier`)",
}


def check_run_kind(config: dict[str, Any], expected: str | None, ckpt_dir: Path) -> None:
    """Refuse a checkpoint whose ``config["kind"]`` is not ``expected`` (None: a diffusion-model run),
    with one line naming the folder, what it is and what it is for."""
    kind = config.get("kind")
    if kind == expected:
        return
    what = _KIND_USE.get(kind, f"a run of unknown kind {kind!r}")
    wanted = "a classifier run" if expected == RUN_KIND_CLASSIFIER else "a diffusion-model run"
    raise CheckpointError(f"{str(ckpt_dir)!r} is {what}; this command needs {wanted}")


def _check_state_types(meta: dict[str, Any], where: str) -> None:
    """The saved training config and model flags have the types of their defaults (a hand-edited
    ``image_size: "abc"`` is a CheckpointError naming the file and the field, not a TypeError later)."""
    from impl.factory import check_value_types, model_and_diffusion_defaults
    from impl.train.config import TrainConfig

    config = meta.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{where!r}: config must be a JSON object, got {config!r}")
    try:
        check_value_types(config, TrainConfig().to_dict(), where)
        flags = config.get("model_flags", {})
        if not isinstance(flags, dict):
            raise ValueError(f"{where}: model_flags must be a JSON object, got {flags!r}")
        check_value_types(flags, model_and_diffusion_defaults(), where)
        if config.get("kind") == RUN_KIND_CLASSIFIER:
            from impl.factory.classifier_run_flags import classifier_flag_defaults

            classifier_flags = config.get("classifier_flags")
            if not isinstance(classifier_flags, dict):
                raise ValueError(f"{where}: classifier_flags must be a JSON object, got {classifier_flags!r}")
            check_value_types(classifier_flags, classifier_flag_defaults(), where)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None


def load_training_checkpoint(path: Path, *, with_training_state: bool = True) -> TrainingCheckpoint:
    """Read a checkpoint (run dir / checkpoints dir / step dir); training state is optional for sampling.

    A checkpoint that cannot be read raises :class:`CheckpointError`, naming the previous checkpoint of
    the run when there is one (it can be resumed explicitly).
    """
    ckpt_dir = find_checkpoint_dir(path)
    try:
        return _read_checkpoint(ckpt_dir, with_training_state)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}{earlier_checkpoint_hint(ckpt_dir)}") from None


def _read_checkpoint(ckpt_dir: Path, with_training_state: bool) -> TrainingCheckpoint:
    meta = read_state_json(ckpt_dir)
    try:
        step = meta["step"]
        config = dict(meta["config"])
        rates = [float(r) for r in meta["ema_rates"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{str(ckpt_dir / STATE_FILENAME)!r} lacks a field: {exc}") from None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(
            f"{str(ckpt_dir / STATE_FILENAME)!r}: step must be an integer >= 0, got {step!r}"
        )
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

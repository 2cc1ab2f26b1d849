"""What ``iddpm encode`` and ``iddpm interpolate`` share: reading images for a model, DDIM inversion."""

from __future__ import annotations

import argparse
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch


def check_new_output(output: str, overwrite: bool) -> Path:
    """``--output`` as a path: a file in an existing folder, not replaced without ``--overwrite``."""
    from impl.commands.common import check_output_folder

    if not output:
        raise ValueError("--output is required: the .npz to write")
    check_output_folder(output)
    path = Path(output)
    if path.exists() and not overwrite:
        raise ValueError(f"--output {output!r} exists; pass --overwrite to replace it")
    return path


def _unreadable(flag: str, path: str, reason: str) -> ValueError:
    return ValueError(f"{flag} {path!r} is not a readable .npz ({reason})")


def read_npz_arrays(path: str, flag: str, names: tuple[str, ...]) -> dict[str, np.ndarray[Any, Any]]:
    """The arrays ``names`` that the .npz ``path`` holds (missing ones left out); ``flag`` is how errors
    name it (``--mask``, or ``A`` for a positional argument).

    Pickled data and object arrays are never loaded (``allow_pickle=False``).  A file numpy cannot read as
    an .npz (not a zip, truncated, a .npy or pickle under an .npz name, an object array) is a one-line
    ValueError naming the flag and the file; a missing file a FileNotFoundError.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{flag} {path!r} is not a file")
    arrays: dict[str, np.ndarray[Any, Any]] | None = None
    name = ""
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                arrays = {}
                for name in (n for n in names if n in data.files):
                    arrays[name] = np.asarray(data[name])
    except ValueError as err:
        message = str(err).lower()
        if "object arrays" in message:  # numpy refusing an object (pickled) array
            where = f"{name} is" if arrays is not None else "it is a lone .npy holding"
            reason = f"{where} an object array; pickled data is never loaded"
        elif "pickle" in message:  # numpy took the file for a pickle: neither a zip archive nor a .npy
            reason = "neither a zip archive nor a .npy file; it is not loaded as a pickle"
        else:
            reason = _first_line(err)
        raise _unreadable(flag, path, reason) from None
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise _unreadable(flag, path, _first_line(err)) from None
    if arrays is None:
        raise _unreadable(flag, path, "it is a single .npy array, not an .npz archive holding arr_0")
    return arrays


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def read_images(
    path: str, flag: str, size: int, channels: int
) -> tuple[np.ndarray[Any, np.dtype[np.uint8]], np.ndarray[Any, np.dtype[np.int64]] | None]:
    """``arr_0`` (uint8 NHWC, H = W = size, C = channels) and ``arr_1`` labels if present, of an .npz
    (`read_npz_arrays`: an unreadable file is a one-line error naming ``flag`` and the file)."""
    arrays = read_npz_arrays(path, flag, ("arr_0", "arr_1"))
    if "arr_0" not in arrays:
        raise ValueError(f"{flag} {path!r} has no arr_0 (uint8 NHWC images)")
    images = arrays["arr_0"]
    labels = arrays.get("arr_1")
    if labels is not None:
        labels = labels.astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"{flag} {path!r}: arr_0 must be uint8 NHWC images, got dtype {images.dtype}, shape "
            f"{images.shape}"
        )
    if images.shape[1:] != (size, size, channels):
        raise ValueError(
            f"{flag} {path!r}: images are {images.shape[1]}x{images.shape[2]}x{images.shape[3]} "
            f"(HxWxC) but the model takes {size}x{size}x{channels}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{flag} {path!r} holds no images")
    return images, labels


def to_model_range(images: np.ndarray[Any, np.dtype[np.uint8]], device: torch.device) -> torch.Tensor:
    """uint8 NHWC in [0, 255] → float32 NCHW in [−1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def class_kwargs(
    flags: dict[str, Any], labels: np.ndarray[Any, np.dtype[np.int64]] | None, flag: str, device: torch.device
) -> dict[str, Any]:
    """``{"y": labels}`` for a class-conditional model (labels required, in range), else ``{}``."""
    if not flags.get("class_cond"):
        return {}
    num_classes = int(flags["num_classes"])
    if labels is None:
        raise ValueError(f"{flag}: the model is class-conditional; the .npz needs arr_1 labels")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"{flag}: labels must be in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    return {"y": torch.from_numpy(labels).to(device)}


def encode(
    loaded: Any, args: argparse.Namespace, x0: torch.Tensor, model_kwargs: dict[str, Any]
) -> torch.Tensor:
    """DDIM inversion x_0 → x_T [S47] of ``x0`` in batches of ``--batch_size``."""
    latents = []
    for start in range(0, x0.shape[0], args.batch_size):
        part = {k: v[start : start + args.batch_size] for k, v in model_kwargs.items()}
        latents.append(
            loaded.diffusion.ddim_reverse_sample_loop(
                loaded.model,
                x0[start : start + args.batch_size],
                clip_denoised=args.clip_denoised,
                model_kwargs=part,
            )
        )
    return torch.cat(latents)

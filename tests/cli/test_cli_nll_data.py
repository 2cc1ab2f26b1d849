"""``iddpm nll --data`` reads every ``iddpm train --data`` kind: a digits ``.npz`` prepared here into a
``.npy`` folder and into tar shards gives, with the same seed, the very bits/dim of the ``.npz`` itself.

Why bit for bit: ``iddpm prepare`` stores the same uint8 pixels (``.npy`` raw, shards as lossless PNG) and
labels in the same order, ``OrderedImages`` cuts them into the same batches, and the seeded generator draws
the same noise in the same order, so the network sees identical float32 inputs and every reported number is
the same float.  Two guards show the equality is not vacuous: the same images in another order, or with
other labels (the model is class-conditional), change the bound.

The checkpoint is a bare state dict of a tiny class-conditional U-Net whose zero-initialised layers are
re-drawn (std 1/sqrt(fan_in)), so that ε and its dependence on the label are O(1) (a freshly trained tiny run
predicts ε ≈ 0, which would hide a label or order mix-up).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from impl.cli import main
from impl.data import load_data, save_npz_atomic
from impl.factory import build_model_and_diffusion, model_and_diffusion_defaults

MODEL = {
    "image_size": 8,
    "in_channels": 1,
    "num_channels": 32,
    "num_res_blocks": 1,
    "attention_resolutions": "",
    "channel_mult": "1,2",
    "learn_sigma": True,
    "diffusion_steps": 20,
    "noise_schedule": "cosine",
    "class_cond": True,
}
MODEL_FLAGS = [token for name, value in MODEL.items() for token in (f"--{name}", str(value))]
N_SET, N_READ, BATCH = 17, 11, 4  # 11 of 17 images: the last batch is partial and shards of 5 are cut
NOT_DATA = ("data", "data_read", "checkpoint")  # the keys that name what was read


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    with torch.random.fork_rng():  # the default initialisation draws from the global generator
        torch.manual_seed(0)
        model, _ = build_model_and_diffusion({**model_and_diffusion_defaults(), **MODEL})
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1 and not param.any():
                param.copy_(torch.randn(param.shape, generator=gen) / math.sqrt(param[0].numel()))
    path = tmp_path_factory.mktemp("nll-data") / "model.pt"
    torch.save(model.state_dict(), path)
    return str(path)


def _prepare(source: Path, out: Path, *extra: str) -> None:
    assert main(["prepare", str(source), "--out", str(out), "--progress", "False", *extra]) == 0


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The first 17 held-out digits with labels as an ``.npz``, prepared into ``npy`` and 5-image shards."""
    root = tmp_path_factory.mktemp("sets")
    digits = load_data("digits:held_out")
    assert digits.labels is not None
    npz = root / "digits.npz"
    save_npz_atomic(npz, digits.images[:N_SET], digits.labels[:N_SET])
    _prepare(npz, root / "npy", "--format", "npy")
    _prepare(npz, root / "shards", "--format", "shards", "--shard_size", "5")
    return {"npz": npz, "npy": root / "npy", "shards": root / "shards"}


def nll(checkpoint: str, data: str | Path, out: Path, *extra: str) -> dict[str, Any]:
    argv = [
        "nll",
        "--checkpoint",
        checkpoint,
        *MODEL_FLAGS,
        "--data",
        str(data),
        "--num_samples",
        str(N_READ),
        "--batch_size",
        str(BATCH),
        "--seed",
        "1",
        "--output",
        str(out),
        *extra,
    ]
    assert main(argv) == 0
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _bound(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in NOT_DATA}


def _specs(sets: dict[str, Path], tmp_path: Path) -> dict[str, str]:
    shards = sets["shards"]
    listing = tmp_path / "shards.txt"
    listing.write_text("# the prepared shards\n" + "".join(f"{p}\n" for p in sorted(shards.glob("*.tar"))))
    return {
        "npy folder": str(sets["npy"]),
        "npy file": str(sets["npy"] / "images.npy"),
        "shard folder": str(shards),
        "brace pattern": str(shards / "shard-{000000..000003}.tar"),
        "txt list": str(listing),
    }


def test_prepared_npy_and_shards_give_the_npz_bound_bit_for_bit(
    checkpoint: str, sets: dict[str, Path], tmp_path: Path
) -> None:
    expected = nll(checkpoint, sets["npz"], tmp_path / "npz.json")
    assert expected["n"] == N_READ and expected["config"]["class_cond"] is True
    assert expected["data_read"] == {"kind": "memory", "images": N_READ, "in_set": N_SET}
    kinds = {"npy folder": "npy", "npy file": "npy"}
    for name, spec in _specs(sets, tmp_path).items():
        got = nll(checkpoint, spec, tmp_path / f"{name}.json")
        assert _bound(got) == _bound(expected), name
        assert got["data"] == spec and got["data_conversion"] is None
        assert got["data_read"] == {"kind": kinds.get(name, "shards"), "images": N_READ, "in_set": N_SET}


def test_the_equality_is_not_vacuous_order_and_labels_change_the_bound(
    checkpoint: str, sets: dict[str, Path], tmp_path: Path
) -> None:
    expected = _bound(nll(checkpoint, sets["npy"], tmp_path / "npy.json"))
    with np.load(sets["npz"]) as f:
        images, labels = f["arr_0"], f["arr_1"]
    reversed_npz, relabelled_npz = tmp_path / "reversed.npz", tmp_path / "relabelled.npz"
    save_npz_atomic(reversed_npz, images[::-1].copy(), labels[::-1].copy())
    save_npz_atomic(relabelled_npz, images, (labels + 1) % 10)
    for other in (reversed_npz, relabelled_npz):
        got = _bound(nll(checkpoint, other, tmp_path / "other.json"))
        assert got["total_bpd"] != expected["total_bpd"], other.name


def test_resize_converts_streamed_sets_as_it_converts_an_npz(
    checkpoint: str, sets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RGB 8x8 data for the 1-channel model: refused without --resize (one line naming it); with it every
    kind is converted batch by batch by the same convert_channels + resize_square, so the bounds agree."""
    with np.load(sets["npz"]) as f:
        rgb, labels = np.repeat(f["arr_0"], 3, axis=3), f["arr_1"]
    rgb[..., 0] = 255 - rgb[..., 0]  # channels that differ, so the luma conversion is not the identity
    npz = tmp_path / "rgb.npz"
    save_npz_atomic(npz, rgb, labels)
    _prepare(npz, tmp_path / "rgb-npy", "--format", "npy")
    _prepare(npz, tmp_path / "rgb-shards", "--shard_size", "5")
    expected = nll(checkpoint, npz, tmp_path / "npz.json", "--resize")
    assert expected["data_conversion"] == {"from": [8, 8, 3], "to": [8, 8, 1]}
    for name in ("rgb-npy", "rgb-shards"):
        out = tmp_path / f"{name}.json"
        argv = ["nll", "--checkpoint", checkpoint, *MODEL_FLAGS, "--data", str(tmp_path / name)]
        capsys.readouterr()
        assert main([*argv, "--output", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "8x8x3" in err and "--resize" in err and "Traceback" not in err
        assert not out.exists()
        got = nll(checkpoint, tmp_path / name, out, "--resize")
        assert _bound(got) == _bound(expected), name
        assert got["data_conversion"] == expected["data_conversion"]


def _unlabelled_npy(tmp_path: Path) -> str:
    path = tmp_path / "plain.npy"
    np.save(path, np.zeros((3, 8, 8, 1), dtype=np.uint8))
    return str(path)


def _float_npy(tmp_path: Path) -> str:
    path = tmp_path / "float.npy"
    np.save(path, np.zeros((3, 8, 8, 1), dtype=np.float32))
    return str(path)


@pytest.mark.parametrize(
    ("make", "extra", "words"),
    [
        (lambda tmp, sets: str(tmp / "missing"), [], ["does not exist", "prepared folder"]),
        (lambda tmp, sets: str(sets["shards"] / "shard-{000000..000009}.tar"), [], ["shard-000004.tar"]),
        (lambda tmp, sets: str(tmp / "none.txt"), [], ["none.txt", "does not exist"]),
        (lambda tmp, sets: _float_npy(tmp), [], ["float.npy", "uint8"]),
        (lambda tmp, sets: _unlabelled_npy(tmp), [], ["class_cond", "labels"]),
        (lambda tmp, sets: str(sets["shards"]), ["--num_samples", "18"], ["num_samples", "17"]),
    ],
)
def test_bad_data_is_one_line_and_writes_nothing(
    checkpoint: str,
    sets: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Any,
    extra: list[str],
    words: list[str],
) -> None:
    out = tmp_path / "nll.json"
    argv = ["nll", "--checkpoint", checkpoint, *MODEL_FLAGS, "--data", make(tmp_path, sets), "--output"]
    capsys.readouterr()
    assert main([*argv, str(out), *extra]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("iddpm nll: error:"), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not out.exists()


def test_an_image_folder_needs_resize_and_then_gives_the_bound_of_its_files(
    checkpoint: str, sets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Greyscale 8x8 PNGs named ``<label>_<i>.png``: the folder is read in sorted file order with class ids
    numbered in sorted name order, so its bound is that of an ``.npz`` holding the files in that order."""
    with np.load(sets["npz"]) as f:
        images, labels = f["arr_0"], f["arr_1"]
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(image[:, :, 0], mode="L").save(folder / f"{label}_{i:03d}.png")
    order = sorted(range(N_SET), key=lambda i: (int(labels[i]), i))
    ids = {name: k for k, name in enumerate(sorted({str(int(v)) for v in labels}))}
    in_file_order = tmp_path / "in_file_order.npz"
    save_npz_atomic(in_file_order, images[order], np.array([ids[str(int(labels[i]))] for i in order]))
    out = tmp_path / "folder.json"
    capsys.readouterr()
    argv = ["nll", "--checkpoint", checkpoint, *MODEL_FLAGS, "--data", str(folder), "--output", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "image folder" in err and "--resize" in err
    got = nll(checkpoint, folder, out, "--resize")
    assert got["data_conversion"] == {"from": "image folder", "to": [8, 8, 1]}
    assert got["data_read"] == {"kind": "folder", "images": N_READ, "in_set": N_SET}
    expected = _bound(nll(checkpoint, in_file_order, tmp_path / "npz.json"))
    assert expected.pop("data_conversion") is None
    assert {k: v for k, v in _bound(got).items() if k != "data_conversion"} == expected


def test_npy_and_shards_are_opened_streamed_not_read_into_memory(sets: dict[str, Path]) -> None:
    from impl.commands.nll import model_sized_data

    for spec in (sets["npy"], sets["npy"] / "images.npy"):
        data, conversion = model_sized_data(str(spec), 8, 1, True, False)
        assert data.source.memory is None and data.source.reader is not None and conversion is None
    data, _ = model_sized_data(str(sets["shards"]), 8, 1, True, False)
    assert data.source.memory is None and data.source.shards is not None
    data, _ = model_sized_data(str(sets["npz"]), 8, 1, True, False)
    assert data.source.memory is not None

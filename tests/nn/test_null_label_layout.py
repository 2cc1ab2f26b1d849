"""The U-Net layout of classifier-free guidance: ``class_dropout_prob > 0`` adds the null-label row, a
state dict with that row loads only with the flag, and ``class_dropout_prob`` is checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from impl.factory import create_model, load_checkpoint
from impl.nn import CheckpointMismatchError

FLAGS = {
    "image_size": 8,
    "num_channels": 32,
    "num_res_blocks": 1,
    "attention_resolutions": "",
    "channel_mult": "1,2",
    "in_channels": 1,
    "class_cond": True,
    "num_classes": 10,
}


def test_only_the_label_embedding_changes_and_by_one_row() -> None:
    plain = create_model(**FLAGS)
    guided = create_model(**FLAGS, class_dropout_prob=0.1)
    a, b = plain.state_dict(), guided.state_dict()
    assert a.keys() == b.keys()
    assert [k for k in a if a[k].shape != b[k].shape] == ["label_emb.weight"]
    assert (a["label_emb.weight"].shape[0], b["label_emb.weight"].shape[0]) == (10, 11)


def test_a_null_label_state_dict_loads_with_the_flag_and_names_it_without(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "cfg.safetensors"
    save_file(create_model(**FLAGS, class_dropout_prob=0.2).state_dict(), str(path))
    loaded = load_checkpoint(path, **FLAGS, class_dropout_prob=0.2)
    assert loaded.label_emb.weight.shape[0] == 11
    with pytest.raises(CheckpointMismatchError, match="--num_classes 10 --class_dropout_prob"):
        load_checkpoint(path, **FLAGS)


@pytest.mark.parametrize(
    ("p", "class_cond", "needle"),
    [
        (1.0, True, r"class_dropout_prob must be a number in \[0, 1\)"),
        (-0.5, True, r"class_dropout_prob must be a number in \[0, 1\)"),
        (float("nan"), True, r"class_dropout_prob must be a number in \[0, 1\)"),
        (0.1, False, "needs a class-conditional model"),
    ],
)
def test_bad_class_dropout_prob_is_a_value_error(p: float, class_cond: bool, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        create_model(**{**FLAGS, "class_cond": class_cond}, class_dropout_prob=p)

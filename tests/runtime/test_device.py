"""``--device`` → ``torch.device`` for every command (``impl.runtime.device.device_from_flag``)."""

from __future__ import annotations

import pytest
import torch

from impl.runtime.device import device_from_flag


def test_named_cpu_devices_pass_through() -> None:
    assert device_from_flag("cpu") == torch.device("cpu")
    assert device_from_flag("cpu", local_rank=3) == torch.device("cpu")


@pytest.mark.cuda(optional=True)
def test_auto_is_this_ranks_cuda_device_or_the_cpu() -> None:
    for rank in (0, 1, 5):
        got = device_from_flag("auto", local_rank=rank)
        if torch.cuda.is_available():
            assert got == torch.device("cuda", rank % torch.cuda.device_count())
        else:
            assert got == torch.device("cpu")


def test_a_name_torch_does_not_know_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu0'"):
        device_from_flag("gpu0")


@pytest.mark.cuda(optional=True)
@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_cuda_without_cuda_is_refused() -> None:
    with pytest.raises(ValueError, match="device 'cuda:0' requested but CUDA is not available"):
        device_from_flag("cuda:0")

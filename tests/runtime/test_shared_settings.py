"""The knobs training and sampling share are defined once in ``impl.runtime`` and every check uses them."""

from __future__ import annotations

import pytest
import torch

from impl.cli.parsers import build_parser
from impl.commands.generation import inference_model, step_runner_for
from impl.runtime.compile import (
    COMPILE_MODES,
    SAMPLING_COMPILE_BACKENDS,
    TRAINING_COMPILE_BACKENDS,
    check_sampling_compile_backend,
)
from impl.runtime.precision import PRECISIONS, PrecisionPolicy, check_precision
from impl.train.config import TrainConfig

CPU = torch.device("cpu")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_is_accepted_by_training_and_sampling(precision: str) -> None:
    assert check_precision(precision) == precision
    TrainConfig(precision=precision).validate()
    assert PrecisionPolicy.create(precision, CPU).precision == precision
    net = torch.nn.Identity()
    wrapped = inference_model(net, precision=precision, device=CPU)
    assert (wrapped is net) == (precision == "fp32")


def test_an_unknown_precision_is_refused_by_every_check_naming_the_allowed_values() -> None:
    checks = [
        lambda: check_precision("fp8"),
        lambda: TrainConfig(precision="fp8").validate(),
        lambda: PrecisionPolicy.create("fp8", CPU),
        lambda: inference_model(torch.nn.Identity(), precision="fp8", device=CPU),
    ]
    for check in checks:
        with pytest.raises(ValueError, match="precision") as info:
            check()
        assert "'fp8'" in str(info.value)
        assert all(name in str(info.value) for name in PRECISIONS)


def test_sampling_accepts_cudagraphs_and_training_does_not() -> None:
    assert check_sampling_compile_backend("cudagraphs") == "cudagraphs"
    assert step_runner_for(True, "cudagraphs") is not None
    with pytest.raises(ValueError, match="compile_backend"):
        TrainConfig(compile_backend="cudagraphs").validate()
    with pytest.raises(ValueError, match=r"compile_backend.*inductor, aot_eager, eager, cudagraphs"):
        check_sampling_compile_backend("tvm")
    for backend in TRAINING_COMPILE_BACKENDS:
        TrainConfig(compile_backend=backend).validate()
        assert step_runner_for(True, backend) is not None


@pytest.mark.parametrize("backend", TRAINING_COMPILE_BACKENDS)
def test_iddpm_train_parses_each_training_backend(backend: str) -> None:
    args = build_parser().parse_args(["train", "--compile_backend", backend])
    assert args.compile_backend == backend


def test_iddpm_train_refuses_the_sampling_only_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(SAMPLING_COMPILE_BACKENDS) - set(TRAINING_COMPILE_BACKENDS) == {"cudagraphs"}
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["train", "--compile_backend", "cudagraphs"])
    assert info.value.code == 2
    assert "--compile_backend" in capsys.readouterr().err


@pytest.mark.parametrize("mode", [m for m in COMPILE_MODES if m])
def test_iddpm_train_parses_each_compile_mode(mode: str) -> None:
    assert build_parser().parse_args(["train", "--compile_mode", mode]).compile_mode == mode

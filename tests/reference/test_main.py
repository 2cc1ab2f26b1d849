"""``python -m reference``: the schedule table and its one-line flag errors."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from reference.__main__ import main
from reference.schedule import diffusion_tables, get_named_beta_schedule


def test_prints_one_row_per_step_with_the_table_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--schedule", "cosine", "--steps", "10"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["t", "beta", "alpha_bar", "posterior_variance", "posterior_log_var_clipped"]
    assert len(lines) == 11
    tab = diffusion_tables(get_named_beta_schedule("cosine", 10))
    for t, line in enumerate(lines[1:]):
        fields = line.split()
        assert int(fields[0]) == t
        values = [float(f) for f in fields[1:]]  # printed with 17 significant digits: round-trips exactly
        assert values == [
            tab.betas[t],
            tab.alphas_cumprod[t],
            tab.posterior_variance[t],
            tab.posterior_log_variance_clipped[t],
        ]
    assert math.isfinite(float(lines[1].split()[-1]))


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--schedule", "quadratic"], "--schedule"),
        (["--schedule", "linear", "--steps", "10"], "--steps"),
        (["--steps", "ten"], "--steps"),
        (["--steps", "0"], "--steps"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_flags_give_one_line_and_exit_code_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert fragment in err


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reference", "--schedule", "linear", "--steps", "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("python -m reference: error: argument --steps: T:")
    assert "\n" not in done.stderr.strip()

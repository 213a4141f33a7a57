"""bench_claim's command line refuses what it cannot run, before it touches a database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_claim.py"


@pytest.mark.parametrize("value", ["abc", "5", "5:x", "-1:100", "5:0"])
def test_a_malformed_vacuum_throttle_is_refused_with_the_expected_form(value: str) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH), f"--vacuum-throttle={value}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert f"--vacuum-throttle {value!r}: expected DELAY_MS:LIMIT" in run.stderr

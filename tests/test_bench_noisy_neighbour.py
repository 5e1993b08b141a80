"""The noisy-neighbour benchmark at a tiny scale: one short round, checked for what it measured.

The benchmark runs as a command in its own process, as an operator runs it.
The test checks that every quiet tenant was measured alone and under the
flood, and that the flood met the rate limit, never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.noisy_neighbour import QUIET_TENANTS, percentile

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_percentile_is_nearest_rank() -> None:
    values = [float(number) for number in range(1, 101)]

    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([3.0], 0.99) == 3.0


@pytest.mark.slow
def test_tiny_run_measures_every_quiet_tenant(tmp_path: Path) -> None:
    output = tmp_path / "results.json"

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.noisy_neighbour",
            "--rounds=1",
            # A low limit, so that a short flood passes it: a minute's allowance comes at once.
            "--seconds=4",
            "--interval=1",
            "--rate-limit=30",
            "--large-mib=4",
            "--downloads=2",
            f"--output={output}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads(output.read_text())
    assert len(results["tenants"]) == QUIET_TENANTS
    for entry in results["tenants"].values():
        assert entry["p99_alone_ms"][0] > 0
        assert entry["p99_flooded_ms"][0] > 0
    assert results["flood_answers"][0]["429"] > 0
    assert results["worst_ratio"] >= results["median_ratio"]

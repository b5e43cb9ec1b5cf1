"""Benchmark figures in README.md and benchmarks/README.md must be the committed results/*.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_tables_match_committed_results():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "report.py"), "--check"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr

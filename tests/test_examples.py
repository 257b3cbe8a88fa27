"""Every script in examples/ runs to completion on the shared data."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

# modules starting with "_" are helpers shared by the examples, not examples
EXAMPLES = sorted(p for p in (Path(__file__).resolve().parent.parent / "examples").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, data_dir, tmp_path):
    args = [sys.executable, str(script), "--data", str(data_dir)]
    if "--out" in script.read_text():
        args += ["--out", str(tmp_path)]
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

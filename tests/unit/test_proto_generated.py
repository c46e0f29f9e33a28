"""The generated code in common/gen is exactly what `make proto` produces from proto/."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_regenerating_changes_nothing(tmp_path):
    work = tmp_path / "repo"
    shutil.copytree(os.path.join(REPO, "proto"), work / "proto")
    shutil.copy(os.path.join(REPO, "Makefile"), work / "Makefile")
    (work / "common").mkdir()
    # reuse this interpreter's venv: the Makefile only needs $(PY) and the plugins beside it
    venv = os.path.dirname(os.path.dirname(sys.executable))
    os.symlink(venv, work / ".venv")
    (work / "pyproject.toml").write_text("")
    stamp = work / ".venv" / ".installed"
    assert stamp.exists(), "run through `make test`, which installs the venv"
    os.utime(stamp)  # newer than the empty pyproject: make must not reinstall
    proc = subprocess.run(["make", "-s", "proto"], cwd=work, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    generated = work / "common" / "gen"
    committed = os.path.join(REPO, "common", "gen")
    differences = _diff(filecmp.dircmp(generated, committed, ignore=["__pycache__"]))
    assert differences == [], f"common/gen is stale; run `make proto`: {differences}"


def _diff(cmp: filecmp.dircmp) -> list[str]:
    out = [f"only in fresh: {n}" for n in cmp.left_only] + [f"only committed: {n}" for n in cmp.right_only]
    _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
    out += [f"differs: {n}" for n in mismatch + errors]
    for sub in cmp.subdirs.values():
        out += _diff(sub)
    return out

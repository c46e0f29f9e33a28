"""A short seeded chaos run in the suite (`make chaos` is the long one).

Runs ``python -m deploy.chaos`` as a subprocess, as an operator would: its own cluster on free
ports in a temporary run dir, three faults in 45 s (seed 83: a network partition between two
BEs made with debug points, an FE SIGKILL, and a BE SIGKILLed while one of its compactions
runs), then the checker. Exit 0 and a report with nothing missing and nothing duplicated, while
the BEs compact their tablets; the partition's rules were added and removed, and the report
gives its convergence time.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deploy.chaos_schedule import LINK_KINDS, generate

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SEED, DURATION = 83, 45  # its 45-s schedule has a link fault (tests/unit/test_chaos_schedule.py)


@pytest.mark.timeout(360)
def test_seeded_chaos_run_loses_and_duplicates_nothing(tmp_path):
    report_dir = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "deploy.chaos", "--seed", str(SEED), "--duration", str(DURATION),
         "--report-dir", str(report_dir)],
        capture_output=True, text=True, timeout=330)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"chaos run failed (exit {proc.returncode}):\n{output[-6000:]}"
    # the schedule printed first is the one generated from the seed alone
    assert output.startswith(generate(SEED, DURATION).text())
    report = json.loads((report_dir / "report.json").read_text())
    check = report["check"]
    assert report["verdict"] == "PASS", report["violations"]
    assert report["violations"] == []
    assert check["missing_count"] == 0 and check["missing"] == []
    assert check["duplicated_count"] == 0 and check["duplicated"] == []
    assert check["produced"] > 0 and check["loaded"] == check["produced"]
    assert check["unhealthy_tablets"] == 0 and check["inconsistent_tablets"] == 0 and check["open_txns"] == []
    assert check["job_state"] == "RUNNING"
    # every fault was injected and recovered, and the timeline was sampled throughout
    for f in report["schedule"]["faults"]:
        kinds = {e["kind"] for e in report["events"] if e["fault"] == f["index"]}
        assert {"fault", "recover"} <= kinds, f"fault #{f['index']} {f['kind']}: events {kinds}"
    assert len(report["timeline"]) >= DURATION * 0.8
    assert (report_dir / "timeline.txt").read_text().count("VERDICT: PASS") == 1
    # ... with compaction running on the BEs all along
    assert report["compactions"]["cumulative"] > 0, report["compactions"]
    # the kill inside a compaction waited for one and says what the restarted BE found
    (inside,) = [f for f in report["schedule"]["faults"] if f["kind"] == "be_kill_in_compaction"]
    texts = [e["text"] for e in report["events"] if e["fault"] == inside["index"]]
    assert any("compaction(s) ran" in t for t in texts), texts
    assert any("interrupted before their swap" in t or "no unswapped compaction output" in t for t in texts), texts
    # the link fault: both sides' DROP rules added, then removed, and the cluster converged after it
    links = [f for f in report["schedule"]["faults"] if f["kind"] in LINK_KINDS]
    assert links, report["schedule_text"]
    for f in links:
        events = [e for e in report["events"] if e["fault"] == f["index"]]
        (injected,) = [e["text"] for e in events if e["kind"] == "fault"]
        (recovered,) = [e["text"] for e in events if e["kind"] == "recover"]
        sides = 1 if f["kind"] in ("slow_link", "broker_unreachable") else 2
        assert injected.count("(rule ") == sides, injected
        assert recovered.count(" removed after ") == sides, recovered
    # convergence: one entry per fault, timed from its recovery
    by_index = {c["index"]: c for c in check["convergence"]}
    assert set(by_index) == {f["index"] for f in report["schedule"]["faults"]}
    assert all(c["recovered_at"] is not None for c in by_index.values()), check["convergence"]
    for kind, k in check["convergence_by_kind"].items():
        assert k["count"] >= 1 and (k["converged"] == 0 or k["min_s"] <= k["median_s"] <= k["max_s"]), (kind, k)

"""Two short seeded chaos runs in the suite (`make chaos` is the long one).

Each runs ``python -m deploy.chaos`` as a subprocess, as an operator would: its own cluster on
free ports in a temporary run dir, a few faults in 45 s, then the checker. Exit 0 and a report
with nothing missing and nothing duplicated, while the BEs compact their tablets.

- one FE, seed 83: a network partition between two BEs made with debug points, an FE SIGKILL,
  and a BE SIGKILLed while one of its compactions runs; the partition's rules were added and
  removed, and the report gives its convergence time;
- three FEs on etcd (``--fes 3``), seed 54: the leader SIGSTOPped past its lease, then the new
  leader SIGKILLed, then a partition between the leader and a BE. Another FE takes over each
  time, the stopped one steps down and both come back as followers, and at the end exactly one
  FE leads and every FE has replayed the journal up to the leader's id.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from deploy.chaos_schedule import LINK_KINDS, generate

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SEED, DURATION = 83, 45  # its 45-s schedule has a link fault (tests/unit/test_chaos_schedule.py)
HA_SEED = 54  # with --fes 3: fe_leader_stop, fe_leader_kill, fe_be_partition


def run_chaos(tmp_path, seed: int, fes: int = 1) -> dict:
    """``python -m deploy.chaos`` for DURATION s; asserts what every run must show, returns the report."""
    report_dir = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "deploy.chaos", "--seed", str(seed), "--duration", str(DURATION),
         "--fes", str(fes), "--report-dir", str(report_dir)],
        capture_output=True, text=True, timeout=330)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"chaos run failed (exit {proc.returncode}):\n{output[-6000:]}"
    # the schedule printed first is the one generated from the seed alone
    assert output.startswith(generate(seed, DURATION, fes=fes).text())
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
    # convergence: one entry per fault, timed from its recovery
    by_index = {c["index"]: c for c in check["convergence"]}
    assert set(by_index) == {f["index"] for f in report["schedule"]["faults"]}
    assert all(c["recovered_at"] is not None for c in by_index.values()), check["convergence"]
    for kind, k in check["convergence_by_kind"].items():
        assert k["count"] >= 1 and (k["converged"] == 0 or k["min_s"] <= k["median_s"] <= k["max_s"]), (kind, k)
    return report


def fault_texts(report: dict, kind: str) -> list[str]:
    (fault,) = [f for f in report["schedule"]["faults"] if f["kind"] == kind]
    return [e["text"] for e in report["events"] if e["fault"] == fault["index"]]


@pytest.mark.timeout(360)
def test_seeded_chaos_run_loses_and_duplicates_nothing(tmp_path):
    report = run_chaos(tmp_path, SEED)
    # the kill inside a compaction waited for one and says what the restarted BE found
    texts = fault_texts(report, "be_kill_in_compaction")
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


@pytest.mark.timeout(360)
def test_seeded_chaos_run_with_three_fes_survives_leader_kill_and_stop(tmp_path):
    report = run_chaos(tmp_path, HA_SEED, fes=3)
    assert report["fes"] == 3
    # the leader was SIGSTOPped past its lease: another FE took over while it slept, and on SIGCONT
    # it found its lease gone and came back as a follower (it steps down by re-executing itself)
    stop = fault_texts(report, "fe_leader_stop")
    (stopped,) = re.findall(r"SIGSTOP the leader (fe\d)", " ".join(stop))
    (took_over,) = re.findall(r"(fe\d) took over the leadership from " + stopped, " ".join(stop))
    assert took_over != stopped
    assert any(f"{stopped} answers as FOLLOWER" in t for t in stop), stop
    # then the new leader was SIGKILLed: a third takeover, and the killed FE rejoins as a follower
    kill = fault_texts(report, "fe_leader_kill")
    (killed,) = re.findall(r"SIGKILL the leader (fe\d)", " ".join(kill))
    assert killed == took_over, (stop, kill)
    assert re.search(r"fe\d took over the leadership from " + killed, " ".join(kill)), kill
    assert any(f"{killed} answers as FOLLOWER" in t for t in kill), kill
    # the partition was between the FE that led then and a BE
    partition = fault_texts(report, "fe_be_partition")
    assert re.search(r"fe\d: DROP rpc with 127\.0\.0\.1:\d+ \(rule", partition[0]), partition
    # the end: exactly one leader, named alike by every FE and by etcd; journals replayed alike
    frontends = report["check"]["frontends"]
    assert frontends["problems"] == [], frontends
    leader = frontends["leader"]
    assert leader in ("fe0", "fe1", "fe2")
    assert frontends["leaders_seen"] == {name: [leader] for name in ("fe0", "fe1", "fe2")}
    assert len(set(frontends["replayed"].values())) == 1 and min(frontends["replayed"].values()) > 0
    assert frontends["replay_equal_after_s"] <= 5.0
    # the timeline shows who led at every sample, and the leader changed during the run
    leaders = [s["leader"] for s in report["timeline"] if s["leader"]]
    assert len(set(leaders)) >= 2 and leaders[-1] == leader

"""Issue 12, 3.9: a node that cannot start says why in one line on stderr, and its log keeps the
traceback (real FE and BE processes, started as an operator would)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from rocksdict import Options, Rdict

from common.config import CLUSTER_TOKEN_ENV

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACEBACK = "Traceback (most recent call last)"
# gRPC's C core writes its own errors to fd 2, e.g. "E1202 11:35:50.245503 26882 add_port.cc:83] ..."
GRPC_CORE_LINE = re.compile(r"^[EWID]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ")


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A loopback port another process listens on (no SO_REUSEPORT: gRPC cannot share it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, CLUSTER_TOKEN_ENV: "test-token", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)


def ours(stderr: str) -> list[str]:
    """The lines of stderr the node wrote (not gRPC's C core)."""
    return [line for line in stderr.strip().splitlines() if not GRPC_CORE_LINE.match(line)]


def test_fe_whose_meta_dir_is_in_use_says_so_in_one_line_and_logs_the_traceback(tmp_path):
    meta = tmp_path / "meta"
    os.makedirs(meta / "editlog")
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    holder = Rdict(str(meta / "editlog"), opts)  # this process holds the edit log, as another FE would
    try:
        log_file = tmp_path / "fe.log"
        proc = run("fe.main", "--meta-dir", str(meta), "--rpc-port", "0", "--log-file", str(log_file))
    finally:
        holder.close()
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("FE failed: ") and f"{meta}/editlog/LOCK" in lines[0]
    assert lines[0].endswith(f"(traceback in {log_file})")
    log_text = log_file.read_text()
    assert TRACEBACK in log_text and "in __init__" in log_text  # the frames, not just the message
    assert f"{meta}/editlog/LOCK" in log_text


def test_be_on_an_occupied_port_says_so_in_one_line_and_logs_the_traceback(tmp_path, occupied_port):
    log_file = tmp_path / "logs" / "be.log"  # its directory is made
    proc = run("be.main", "--storage-dir", str(tmp_path / "storage"), "--fe", "127.0.0.1:1",
               "--be-port", str(occupied_port), "--log-file", str(log_file))
    assert proc.returncode == 1, proc.stderr
    lines = ours(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("BE failed: ") and f"127.0.0.1:{occupied_port}" in lines[0]
    assert lines[0].endswith(f"(traceback in {log_file})")
    log_text = log_file.read_text()
    assert TRACEBACK in log_text and "in start" in log_text
    assert "loaded 0 tablets" in log_text  # the rest of the log goes there too


def test_without_a_log_file_the_traceback_goes_to_stderr_with_the_log(tmp_path, occupied_port):
    """The local cluster sends a node's stderr to <run dir>/<node>/log: the traceback lands there."""
    proc = run("fe.main", "--meta-dir", str(tmp_path / "meta"), "--rpc-port", str(occupied_port))
    assert proc.returncode == 1
    assert TRACEBACK in proc.stderr and "in start" in proc.stderr
    failed = [line for line in proc.stderr.splitlines() if " fe ERROR " in line]
    assert len(failed) == 1 and "FE failed: " in failed[0] and f"127.0.0.1:{occupied_port}" in failed[0]


def test_an_unwritable_log_file_is_refused_in_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run("fe.main", "--meta-dir", str(tmp_path / "meta"), "--log-file", str(blocker / "fe.log"))
    assert proc.returncode == 2  # a usage error, like any bad argument
    assert TRACEBACK not in proc.stderr
    assert f"--log-file {blocker / 'fe.log'}: cannot open it" in proc.stderr.strip().splitlines()[-1]

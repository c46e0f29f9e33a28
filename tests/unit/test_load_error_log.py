"""A BE's load error logs (be/load/error_log.py): StarRocks' "Error: <reason>. Row: <row>" lines,
file names error_log_<hex>_<hex> under <storage_dir>/error_log, the URL a load answers, what is
kept (age and count), and names that are not an error log's (path traversal) never opened."""

from __future__ import annotations

import os

import pytest

from be.load.error_log import PATH, BadName, ErrorLogs, lines
from common.loadformat import FilteredRow

ROWS = [FilteredRow("x,2024-01-07,bad id", "row 3: column 'id' value 'x' is not a valid BIGINT"),
        FilteredRow("4,2024-01-08", "row 4: expected 3 fields separated by ',' but got 2")]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_row_reason_first_then_a_summary_when_more_were_filtered():
    assert lines(ROWS, 2) == (
        "Error: row 3: column 'id' value 'x' is not a valid BIGINT. Row: x,2024-01-07,bad id\n"
        "Error: row 4: expected 3 fields separated by ',' but got 2. Row: 4,2024-01-08\n")
    assert lines(ROWS, 120).endswith(
        "Error: 120 rows were filtered in all; the first 2 are listed above (the load keeps a sample)\n")
    multi = lines([FilteredRow('{"id": 1,\n "v": 2}', "row 1: bad\r\nreally")], 1)
    assert multi == 'Error: row 1: bad\\r\\nreally. Row: {"id": 1,\\n "v": 2}\n' and multi.count("\n") == 1


def test_write_gives_the_url_and_read_gives_the_rows(tmp_path):
    logs = ErrorLogs(str(tmp_path), "http://127.0.0.1:8040/")
    url = logs.write(ROWS, 2)
    base, _, name = url.partition(f"{PATH}?file=")
    assert base == "http://127.0.0.1:8040" and name.startswith("error_log_")
    assert os.path.isfile(os.path.join(tmp_path, "error_log", name))
    assert logs.read(name) == lines(ROWS, 2)
    assert logs.url(name) == url
    assert logs.write(ROWS, 2) != url  # every load its own file


@pytest.mark.parametrize("name", [
    "../../etc/passwd", "error_log_1_2/../../x", "/etc/passwd", "error_log_..%2f_1", "error_log_1_2.tmp",
    "error_log_zz_1", "error_log_1", "ERROR_LOG_1_2", "error_log_1_2\n", "", "error_log_" + "1" * 17 + "_1"])
def test_a_name_that_is_not_an_error_logs_is_never_opened(tmp_path, name):
    logs = ErrorLogs(str(tmp_path), "http://h:1")
    with pytest.raises(BadName, match="is not the name of a load error log"):
        logs.read(name)


def test_an_unknown_name_reads_none(tmp_path):
    assert ErrorLogs(str(tmp_path), "http://h:1").read("error_log_1_2") is None


def test_the_oldest_go_beyond_max_files(tmp_path):
    logs = ErrorLogs(str(tmp_path), "http://h:1", max_files=3)
    names = [logs.write(ROWS, 2).rsplit("=", 1)[1] for _ in range(5)]
    assert list(logs.names()) == names[2:]
    assert sorted(os.listdir(logs.dir)) == sorted(names[2:])
    assert logs.read(names[0]) is None and logs.read(names[4]) is not None


def test_files_past_reserve_hours_go_at_the_next_write(tmp_path):
    clock = Clock()
    logs = ErrorLogs(str(tmp_path), "http://h:1", reserve_hours=48, clock=clock)
    old = logs.write(ROWS, 2).rsplit("=", 1)[1]
    clock.now += 47 * 3600
    kept = logs.write(ROWS, 2).rsplit("=", 1)[1]
    assert logs.read(old) is not None
    clock.now += 2 * 3600
    new = logs.write(ROWS, 2).rsplit("=", 1)[1]
    assert logs.read(old) is None and logs.read(kept) is not None and logs.read(new) is not None


def test_a_restarted_be_keeps_its_files_in_age_order_and_drops_half_written_ones(tmp_path):
    logs = ErrorLogs(str(tmp_path), "http://h:1")
    first = logs.write(ROWS, 2).rsplit("=", 1)[1]
    second = logs.write(ROWS, 2).rsplit("=", 1)[1]
    os.utime(os.path.join(logs.dir, first), (1_000, 1_000))
    os.utime(os.path.join(logs.dir, second), (2_000, 2_000))
    with open(os.path.join(logs.dir, "error_log_a_b.tmp"), "w") as f:
        f.write("half")
    with open(os.path.join(logs.dir, "unrelated.txt"), "w") as f:
        f.write("not ours")
    again = ErrorLogs(str(tmp_path), "http://h:1", reserve_hours=1e9, max_files=1)
    assert list(again.names()) == [second]  # the older one went: one file kept
    assert sorted(os.listdir(again.dir)) == sorted([second, "unrelated.txt"])


async def test_a_disk_that_refuses_gives_no_url_and_no_failure(tmp_path):
    logs = ErrorLogs(str(tmp_path), "http://h:1")
    os.chmod(logs.dir, 0o500)
    try:
        if os.access(logs.dir, os.W_OK):  # root writes anyway: make the directory a file instead
            os.chmod(logs.dir, 0o700)
            os.rmdir(logs.dir)
            with open(logs.dir, "w") as f:
                f.write("")
        assert await logs.write_async(ROWS, 2) is None
    finally:
        if os.path.isdir(logs.dir):
            os.chmod(logs.dir, 0o700)

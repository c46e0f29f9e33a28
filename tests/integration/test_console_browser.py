"""Issue 15: the FE's live web console, opened in a real browser (Debian's chromium, headless,
driven by Playwright for Python) against a real cluster of 3 BEs.

A routine load job shows its rows loaded and its sparklines. Every BE shows alive; a BE killed by pid turns red within seconds and its replicas go unhealthy;
a load while it is down leaves its replicas behind, and once it is back they turn healthy again as
the tablet scheduler's clones finish. Screenshots: bench/results/console.png (healthy),
console-be-dead.png (a BE dead) and console-repaired.png (after the clones).
"""

from __future__ import annotations

import base64
import os
import re

import pytest

from tests.kafka_support import create_topic, produce, run
from tests.support import Admin

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "bench", "results")
FAST = {
    "heartbeat_timeout_second": "3",
    "routine_load_task_consume_second": "1",
    "tablet_sched_repair_delay_factor_second": "2",
    "tablet_sched_checker_interval_seconds": "1",
}
BUCKETS = 6
COLUMNS = [{"name": "id", "type": "BIGINT", "not_null": True}, {"name": "msg", "type": "VARCHAR(64)"}]
PARTITIONS = 3
ROUTINE_ROWS = 3000


def load(admin: Admin, start: int, n: int) -> None:
    data = "".join(f"{i},m{i}\n" for i in range(start, start + n)).encode()
    res = admin.call("StreamLoad", {"db": "console", "table": "t", "data": base64.b64encode(data).decode()},
                     timeout_s=60)
    assert res["status"] == "Success", res


def test_console_shows_a_killed_backend_and_its_replicas_repaired(cluster_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the console is tested in Debian's chromium; run `make browser` "
                    f"(apt-get install chromium) and try again")
    from playwright.sync_api import expect, sync_playwright

    cluster = cluster_factory(3, with_broker=True, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    admin.call("CreateDatabase", db="console")
    admin.call("CreateTable", db="console", table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=BUCKETS, properties={"replication_num": "3", "write_quorum": "MAJORITY"})
    run(create_topic(cluster.broker_address, "events", PARTITIONS))
    run(produce(cluster.broker_address, "events",
                ((i % PARTITIONS, f"{i},m{i}".encode()) for i in range(1000, 1000 + ROUTINE_ROWS))))
    admin.call("CreateRoutineLoad", db="console", name="events", table="t",
               properties={"format": "csv", "max_batch_interval": "1"},
               data_source_properties={"kafka_broker_list": cluster.broker_address, "kafka_topic": "events",
                                       "property.kafka_default_offsets": "OFFSET_BEGINNING"})
    load(admin, 0, 100)
    os.makedirs(RESULTS, exist_ok=True)
    killed_port = cluster.spec.be_port_of(1)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(http_credentials={"username": "root", "password": ""},
                                          viewport={"width": 1400, "height": 900})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(cluster.fe_http_url() + "/")

            # every BE alive, every replica healthy
            expect(page.locator("tr.be[data-alive='true']")).to_have_count(3, timeout=20_000)
            expect(page.locator(".map-panel[data-be-port] .cell.healthy")).to_have_count(3 * BUCKETS)
            expect(page.get_by_test_id("alive-count")).to_have_text("3")
            expect(page.locator("#conn")).to_have_attribute("data-live", "true")
            # the routine load job: RUNNING, every row loaded, lag 0, a rows/s sparkline with a line
            job = page.locator("tr[data-job='events']")
            expect(job.locator(".pill")).to_have_text("RUNNING", timeout=20_000)
            expect(job.locator("[data-loaded]")).to_have_text(f"{ROUTINE_ROWS:,}", timeout=30_000)
            expect(job.locator("[data-lag]")).to_have_text("0", timeout=20_000)
            expect(job.locator("svg.spark polyline").first).to_be_attached()
            page.screenshot(path=os.path.join(RESULTS, "console.png"), full_page=True)

            # SIGKILL one BE: within seconds its row is red and its replicas unhealthy
            cluster.kill_node("be1")
            row = page.locator(f"tr.be[data-be-port='{killed_port}']")
            expect(row).to_have_attribute("data-alive", "false", timeout=20_000)
            expect(row).to_have_class(re.compile(r"\bdead\b"))
            pill = row.locator(".pill")
            expect(pill).to_have_text("DEAD")
            expect(pill).to_have_css("background-color", "rgb(214, 69, 69)")  # --dead
            panel = page.locator(f".map-panel[data-be-port='{killed_port}']")
            expect(panel.locator(".cell.dead")).to_have_count(BUCKETS)
            expect(panel.locator(".cell:not(.dead)")).to_have_count(0)
            expect(page.get_by_test_id("alive-count")).to_have_text("2")
            expect(page.get_by_test_id("unhealthy-count")).to_have_text(str(BUCKETS), timeout=15_000)
            page.screenshot(path=os.path.join(RESULTS, "console-be-dead.png"), full_page=True)

            # a load while it is down (MAJORITY: 2 of 3 replicas); back, its replicas lag behind
            # until the scheduler clones the missing versions into them
            load(admin, 100, 100)
            cluster.start_node("be1")
            expect(row).to_have_attribute("data-alive", "true", timeout=20_000)
            expect(panel.locator(".cell.healthy")).to_have_count(BUCKETS, timeout=30_000)
            expect(page.locator(".map-panel[data-be-port] .cell:not(.healthy)")).to_have_count(0)
            expect(page.get_by_test_id("unhealthy-count")).to_have_text("0", timeout=10_000)
            # the clones, in the scheduler's history
            clones = page.locator("#sched tbody tr", has_text="INCREMENTAL clone from backend")
            expect(clones.first).to_be_visible()
            expect(clones.first.locator(".pill")).to_have_text("FINISHED")
            page.screenshot(path=os.path.join(RESULTS, "console-repaired.png"), full_page=True)
            assert errors == [], f"errors in the page's script: {errors}"
        finally:
            browser.close()

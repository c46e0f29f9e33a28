"""Edit log + image: the live path and replay reach the same state; checkpoints bound replay."""

from __future__ import annotations

import pytest

from common.errors import InvalidArgument, NotFound
from fe.persist.editlog import EditLog
from fe.persist.ids import IdAllocator
from fe.persist.journal import Journal
from fe.system.backends import BackendRegistry, DiskInfo, Heartbeat
from fe.system.dynconfig import DynamicConfig


class FakeClock:
    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = 1_700_000_000_000

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += int(seconds * 1000)


def build(meta_dir, clock: FakeClock, checkpoint_every: int = 1000):
    journal = Journal(EditLog(str(meta_dir)), lambda: checkpoint_every)
    ids = IdAllocator(journal)
    config = DynamicConfig(journal)
    backends = BackendRegistry(journal, ids, heartbeat_timeout_s=lambda: config.heartbeat_timeout_second,
                               wall_ms=lambda: clock.wall, mono=lambda: clock.mono)
    journal.register("ids", ids)
    journal.register("config", config)
    journal.register("backend", backends)
    journal.replay()
    return journal, ids, config, backends


def hb(backend_id: int, port: int, start: int) -> Heartbeat:
    return Heartbeat(backend_id, "127.0.0.1", port, 0, start, DiskInfo(100, 10, 90), 0)


@pytest.mark.parametrize("checkpoint_every", [1000, 3])
def test_live_path_and_replay_give_the_same_state(tmp_path, checkpoint_every):
    clock = FakeClock()
    journal, ids, config, backends = build(tmp_path, clock, checkpoint_every)
    a = backends.register(0, "127.0.0.1", 9060, 0, 1)
    b = backends.register(0, "127.0.0.1", 9061, 0, 1)
    assert backends.register(a, "127.0.0.1", 9060, 0, 2) == a  # restart: same id, new start time
    assert backends.register(0, "127.0.0.1", 9061, 0, 3) == b  # known by host:port
    config.set("heartbeat_timeout_second", "7")
    config.set("tablet_sched_disable_balance", "true")
    live = journal.dump()
    journal.close()

    journal2, ids2, config2, backends2 = build(tmp_path, clock, checkpoint_every)
    assert journal2.dump() == live
    assert config2.heartbeat_timeout_second == 7
    assert config2.tablet_sched_disable_balance is True
    assert [x.last_start_time_ms for x in backends2.all()] == [2, 3]
    assert ids2.next() > ids.next()  # a restart starts a fresh id batch: none is handed out twice
    if checkpoint_every == 3:
        assert journal2.replayed < 6  # the image holds the rest


def test_liveness_follows_heartbeats(tmp_path):
    clock = FakeClock()
    _, _, config, backends = build(tmp_path, clock)
    events = []
    backends.add_listener(lambda be, ev: events.append((be.backend_id, ev)))
    bid = backends.register(0, "127.0.0.1", 9060, 0, 1)
    assert backends.get(bid).alive is False  # alive only once it heartbeats
    assert backends.heartbeat(hb(bid, 9060, 1)) is True
    assert backends.get(bid).alive is True
    clock.advance(config.heartbeat_timeout_second - 0.5)
    assert backends.check_liveness() == []
    clock.advance(1.0)
    assert [b.backend_id for b in backends.check_liveness()] == [bid]
    assert "heartbeat_timeout_second" in backends.get(bid).err_msg
    backends.heartbeat(hb(bid, 9060, 5))  # it restarted
    assert backends.get(bid).alive and backends.get(bid).err_msg == ""
    assert backends.get(bid).last_start_time_ms == 5
    assert events == [(bid, "alive"), (bid, "dead"), (bid, "restarted"), (bid, "alive")]
    assert backends.heartbeat(hb(424242, 9099, 1)) is False  # unknown: must register


def test_dynamic_config_validates_names_types_and_ranges(tmp_path):
    config = DynamicConfig()
    with pytest.raises(NotFound, match="unknown config 'no_such_thing'; known: .*heartbeat_timeout_second"):
        config.set("no_such_thing", "1")
    with pytest.raises(InvalidArgument, match="'heartbeat_timeout_second' = 'abc': must be an integer"):
        config.set("heartbeat_timeout_second", "abc")
    with pytest.raises(InvalidArgument, match="must be between 1 and 3600"):
        config.set("heartbeat_timeout_second", "0")
    with pytest.raises(InvalidArgument, match="must be true or false"):
        config.set("tablet_sched_disable_balance", "maybe")
    config.set("capacity_used_percent_high_water", "0.8")
    assert config.capacity_used_percent_high_water == 0.8
    assert [s.name for s, _ in config.show("%repair%")] == ["tablet_sched_repair_delay_factor_second"]


def test_start_up_overrides_yield_to_set_config(tmp_path):
    journal = Journal(EditLog(str(tmp_path)))
    config = DynamicConfig(journal, {"heartbeat_timeout_second": "9"})
    journal.register("config", config)
    journal.replay()
    assert config.heartbeat_timeout_second == 9
    config.set("heartbeat_timeout_second", "5")
    journal.close()
    journal2 = Journal(EditLog(str(tmp_path)))
    config2 = DynamicConfig(journal2, {"heartbeat_timeout_second": "9"})
    journal2.register("config", config2)
    journal2.replay()
    assert config2.heartbeat_timeout_second == 5

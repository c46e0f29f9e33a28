"""The pure debug-rule model and matcher: validation, matching, probability, expiry, hits; and the
DebugPoints runtime acting at a named code point (on a fake clock, random source and sleep)."""

from __future__ import annotations

import grpc
import pytest

from common.debug import BE_KAFKA_CONSUME, BE_POINTS, FE_POINTS, NAMED_POINTS, DebugPoints
from common.debug.rules import Action, RuleSpec, RuleTable
from common.errors import InjectedFailure, Unavailable


class Clock:
    def __init__(self, now_ms: int = 1_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


class Dice:
    """A random source answering the values it was given, in order."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def __call__(self) -> float:
        return self.values.pop(0)


def table(clock: Clock | None = None, dice: Dice | None = None, points=BE_POINTS) -> RuleTable:
    return RuleTable(points, clock_ms=clock or Clock(), random=dice or Dice())


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("spec, words", [
    (RuleSpec(point="no.such.point", action="DROP"), ["unknown point 'no.such.point'", "rpc.in", BE_KAFKA_CONSUME]),
    (RuleSpec(point="", action="DROP"), ["field 'point' is required", "rpc.out"]),
    (RuleSpec(point="fe.txn.commit.after_journal", action="DROP"), ["unknown point", "be.write.before_ack"]),
    (RuleSpec(point="rpc", action="EXPLODE"), ["unknown action 'EXPLODE'", "DROP, DELAY, FAIL"]),
    (RuleSpec(point="rpc", action=""), ["field 'action' is required", "DROP, DELAY, FAIL"]),
    (RuleSpec(point="rpc", action="DELAY"), ["DELAY rule needs delay_ms > 0"]),
    (RuleSpec(point="rpc", action="DROP", delay_ms=5), ["delay_ms applies to DELAY rules only"]),
    (RuleSpec(point="rpc", action="FAIL", fail_code="BROKEN"), ["unknown fail_code 'BROKEN'", "RESOURCE_EXHAUSTED"]),
    (RuleSpec(point="rpc", action="FAIL", fail_code="OK"), ["unknown fail_code 'OK'"]),
    (RuleSpec(point="rpc", action="DROP", fail_code="INTERNAL"), ["apply to FAIL rules only"]),
    (RuleSpec(point="rpc", action="DROP", probability=0.0), ["probability 0.0 is outside (0, 1]"]),
    (RuleSpec(point="rpc", action="DROP", probability=1.5), ["probability 1.5 is outside (0, 1]"]),
    (RuleSpec(point="rpc", action="DROP", probability=float("nan")), ["is outside (0, 1]"]),
    (RuleSpec(point="rpc", action="DROP", method="WriteRows"), ["not a full method pattern",
                                                                "/tabletsim.v1.BackendService/WriteRows"]),
    (RuleSpec(point="rpc", action="DROP", method="/a b"), ["not a full method pattern"]),
    (RuleSpec(point=BE_KAFKA_CONSUME, action="DROP", method="/x/Y"), ["applies to the RPC points", "rpc.in"]),
    (RuleSpec(point="rpc", action="DROP", peer="localhost"), ["peer 'localhost' is not host:port"]),
    (RuleSpec(point="rpc", action="DROP", peer="h:99999"), ["is not host:port"]),
    (RuleSpec(point="rpc", action="DROP", id="bad id!"), ["rule id 'bad id!'", "letters, digits"]),
])
def test_invalid_rules_name_what_is_wrong_and_what_is_allowed(spec, words):
    with pytest.raises(ValueError) as err:
        table().add(spec)
    for word in words:
        assert word in str(err.value)


def test_points_without_a_peer_take_no_peer():
    with pytest.raises(ValueError) as err:
        table(points=FE_POINTS).add(RuleSpec(point="fe.txn.publish.before_send", action="DROP", peer="127.0.0.1:9060"))
    assert "'fe.txn.publish.before_send' has no peer" in str(err.value) and "be.kafka.consume" in str(err.value)


def test_a_valid_rule_is_stored_with_an_id_and_its_expiry():
    clock = Clock(5_000)
    rules = table(clock)
    a = rules.add(RuleSpec(point="rpc", action="DROP", peer="127.0.0.1:9060"))
    b = rules.add(RuleSpec(point="rpc.out", action="FAIL", fail_code="resource_exhausted", fail_message="full",
                           method="/tabletsim.v1.BackendService/Write*", expire_after_ms=250))
    c = rules.add(RuleSpec(point=BE_KAFKA_CONSUME, action="DELAY", delay_ms=100, probability=0.5))
    assert (a.id, b.id, c.id) == ("1", "2", "3")
    assert a.action is Action.DROP and a.expires_at_ms == 0
    assert b.fail_code is grpc.StatusCode.RESOURCE_EXHAUSTED and b.expires_at_ms == 5_250
    assert c.probability == 0.5
    assert [r.id for r in rules.rules()] == ["1", "2", "3"]
    # FAIL without a code fails INTERNAL
    assert rules.add(RuleSpec(point="rpc", action="FAIL")).fail_code is grpc.StatusCode.INTERNAL


def test_a_given_id_replaces_that_rule_and_new_ids_skip_used_ones():
    rules = table()
    rules.add(RuleSpec(point="rpc", action="DROP", id="2"))
    assert rules.add(RuleSpec(point="rpc", action="DROP")).id == "1"
    assert rules.add(RuleSpec(point="rpc", action="DROP")).id == "3"
    rules.add(RuleSpec(point="rpc", action="DELAY", delay_ms=7, id="2"))
    assert [(r.id, r.action) for r in rules.rules()] == [("2", Action.DELAY), ("1", Action.DROP), ("3", Action.DROP)]


def test_remove_and_clear():
    rules = table()
    rules.add(RuleSpec(point="rpc", action="DROP"))
    rules.add(RuleSpec(point="rpc", action="DROP"))
    assert rules.remove("1") is True
    assert rules.remove("1") is False
    assert rules.remove("nope") is False
    assert rules.clear() == 1
    assert rules.rules() == [] and not rules


# ------------------------------------------------------------------ matching


def test_matching_by_point_method_and_peer():
    rules = table()
    rules.add(RuleSpec(point="rpc.in", action="DROP", peer="127.0.0.1:9020", id="in"))
    rules.add(RuleSpec(point="rpc", action="DROP", method="*/Heartbeat", id="hb"))
    rules.add(RuleSpec(point=BE_KAFKA_CONSUME, action="DROP", peer="127.0.0.1:9092", id="kafka"))
    assert rules.match("rpc.in", "/tabletsim.v1.BackendService/WriteRows", "127.0.0.1:9020").id == "in"
    assert rules.match("rpc.out", "/tabletsim.v1.BackendService/WriteRows", "127.0.0.1:9020") is None
    assert rules.match("rpc.out", "/tabletsim.v1.FrontendService/Heartbeat", "127.0.0.1:9020").id == "hb"
    assert rules.match("rpc.in", "/tabletsim.v1.FrontendService/Heartbeat", "").id == "hb"
    assert rules.match("rpc.in", "/tabletsim.v1.FrontendService/HeartbeatX", "") is None
    assert rules.match(BE_KAFKA_CONSUME, "", "127.0.0.1:9092").id == "kafka"
    assert rules.match(BE_KAFKA_CONSUME, "", "127.0.0.1:9093") is None
    assert rules.match("be.clone.middle") is None


def test_probability_and_hit_counting():
    dice = Dice(0.7, 0.2, 0.5, 0.9, 0.9, 0.9)
    rules = table(dice=dice)
    rules.add(RuleSpec(point="rpc", action="DROP", probability=0.5, id="half"))
    assert rules.match("rpc.out", "/s/M", "") is None  # 0.7 >= 0.5: spared
    assert rules.match("rpc.out", "/s/M", "").id == "half"  # 0.2 < 0.5: hit
    assert rules.match("rpc.out", "/s/M", "") is None  # 0.5 >= 0.5: spared
    assert rules.rules()[0].hits == 1
    rules.add(RuleSpec(point="rpc", action="DROP", id="always"))
    for _ in range(3):  # "half" is spared (0.9); "always" has no probability: no dice thrown for it
        assert rules.match("rpc.in", "/s/M", "").id == "always"
    assert [r.hits for r in rules.rules()] == [1, 3]
    assert dice.values == []


def test_the_first_acting_rule_wins_and_a_spared_rule_lets_the_next_one_act():
    rules = table(dice=Dice(0.9))
    rules.add(RuleSpec(point="rpc", action="DROP", probability=0.1, id="rare"))
    rules.add(RuleSpec(point="rpc", action="DELAY", delay_ms=10, id="slow"))
    assert rules.match("rpc.out", "/s/M", "").id == "slow"


def test_expired_rules_are_dropped():
    clock = Clock(0)
    rules = table(clock)
    rules.add(RuleSpec(point="rpc", action="DROP", expire_after_ms=100, id="brief"))
    rules.add(RuleSpec(point="rpc", action="DELAY", delay_ms=1, id="lasting"))
    clock.now_ms = 99
    assert rules.match("rpc.out", "/s/M", "").id == "brief"
    clock.now_ms = 100
    assert rules.match("rpc.out", "/s/M", "").id == "lasting"
    assert [r.id for r in rules.rules()] == ["lasting"]
    rules.add(RuleSpec(point="rpc", action="DROP", expire_after_ms=5, id="x"))
    clock.now_ms = 200
    assert [r.id for r in rules.rules()] == ["lasting"]


def test_named_points_are_listed_once_per_node_kind():
    assert set(FE_POINTS).isdisjoint(BE_POINTS)
    assert set(NAMED_POINTS) == set(FE_POINTS) | set(BE_POINTS)
    assert all(p.startswith("fe.") for p in FE_POINTS) and all(p.startswith("be.") for p in BE_POINTS)


# ------------------------------------------------------------------ DebugPoints at a code point


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


async def test_a_code_point_drops_fails_or_delays():
    sleeps = Sleeps()
    debug = DebugPoints("127.0.0.1:9060", BE_POINTS, clock_ms=Clock(), random=Dice(), sleep=sleeps)
    await debug.point(BE_KAFKA_CONSUME, "127.0.0.1:9092")  # no rules: nothing happens
    debug.rules.add(RuleSpec(point=BE_KAFKA_CONSUME, action="DROP", peer="127.0.0.1:9092", id="k"))
    with pytest.raises(Unavailable) as dropped:
        await debug.point_each(BE_KAFKA_CONSUME, ["127.0.0.1:9091", "127.0.0.1:9092"])
    assert "127.0.0.1:9092" in str(dropped.value) and "rule k" in str(dropped.value)
    assert dropped.value.code is grpc.StatusCode.UNAVAILABLE
    debug.rules.clear()
    debug.rules.add(RuleSpec(point="be.write.before_ack", action="FAIL", fail_code="RESOURCE_EXHAUSTED",
                             fail_message="disk full"))
    with pytest.raises(InjectedFailure) as failed:
        await debug.point("be.write.before_ack")
    assert failed.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(failed.value).startswith("disk full")
    debug.rules.clear()
    debug.rules.add(RuleSpec(point="be.clone.middle", action="DELAY", delay_ms=250))
    await debug.point("be.clone.middle", "127.0.0.1:9061")
    assert sleeps.slept == [0.25]
    with pytest.raises(ValueError, match="not a named point of this node"):
        await debug.point("fe.txn.commit.after_journal")


async def test_a_disabled_instance_never_acts():
    debug = DebugPoints.disabled("127.0.0.1:9060")
    assert not debug.enabled and debug.server_interceptors() == []
    await debug.point("anything at all")
    assert debug.check_rpc("rpc.out", "/s/M", "") is None

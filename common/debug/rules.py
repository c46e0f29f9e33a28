"""Debug-point rules and their matcher: pure (no I/O, no await), on an injected clock and random source.

A rule names a point on one node and what happens there:

- the RPC points: ``rpc.out`` (calls the node makes; the peer is the address it dials),
  ``rpc.in`` (calls it serves; the peer is the caller's own node address, from the
  ``x-tabletsim-node`` header) and ``rpc`` (both). ``method`` narrows them with an fnmatch
  pattern on the full method name, ``peer`` with an exact ``host:port``;
- a named code point (:data:`FE_POINTS`, :data:`BE_POINTS`), e.g. ``fe.txn.commit.after_journal``;
  ``peer`` narrows the points that have one (``be.kafka.consume``: the broker address).

The action is DROP (the call or code point fails UNAVAILABLE), DELAY (it waits ``delay_ms``) or
FAIL (it fails with the gRPC status named by ``fail_code``). ``probability`` in (0, 1] makes a
matching rule act only that often; ``expire_after_ms`` removes it after that long. Rules are
tried in the order they were added, and the first one that acts wins; ``hits`` counts its acts.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from enum import Enum

import grpc

RPC = "rpc"
RPC_IN = "rpc.in"
RPC_OUT = "rpc.out"
RPC_POINTS = (RPC, RPC_IN, RPC_OUT)

# ------------------------------------------------------------------ the named code points
FE_TXN_COMMIT_BEFORE_JOURNAL = "fe.txn.commit.before_journal"
"""The FE's CommitTxn, before the commit is journaled (the txn stays PREPARE if it fails here)."""
FE_TXN_COMMIT_AFTER_JOURNAL = "fe.txn.commit.after_journal"
"""The FE's CommitTxn, after the commit is journaled (the txn is COMMITTED even if it fails here)."""
FE_TXN_PUBLISH_BEFORE_SEND = "fe.txn.publish.before_send"
"""The publish daemon, before it sends a committed txn's PublishVersion calls."""
BE_CLONE_MIDDLE = "be.clone.middle"
"""A clone on its destination BE, after the source's rowsets arrived and before they are
installed; peer: the source BE."""
BE_WRITE_BEFORE_ACK = "be.write.before_ack"
"""A BE's WriteRows, after the rows are stored as pending and before the answer; peer: the
coordinator BE."""
BE_KAFKA_CONSUME = "be.kafka.consume"
"""A routine load task's Kafka consumer, before it starts and before each fetch; peer: each
broker of the task's broker list. DROP makes the broker unreachable from this BE."""

FE_POINTS = (FE_TXN_COMMIT_BEFORE_JOURNAL, FE_TXN_COMMIT_AFTER_JOURNAL, FE_TXN_PUBLISH_BEFORE_SEND)
PEERLESS_POINTS = FE_POINTS  # no other node at these points: a rule there takes no peer
BE_POINTS = (BE_CLONE_MIDDLE, BE_WRITE_BEFORE_ACK, BE_KAFKA_CONSUME)
NAMED_POINTS = FE_POINTS + BE_POINTS

MAX_RULES = 1000
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_METHOD_START = ("/", "*", "?", "[")
FAIL_CODES = {c.name: c for c in grpc.StatusCode if c is not grpc.StatusCode.OK}


class Action(Enum):
    DROP = "DROP"
    DELAY = "DELAY"
    FAIL = "FAIL"


@dataclass(frozen=True)
class RuleSpec:
    """A rule as asked for (decoded from the request, not yet validated)."""

    point: str
    action: str
    method: str = ""
    peer: str = ""
    delay_ms: int = 0
    fail_code: str = ""
    fail_message: str = ""
    probability: float | None = None
    expire_after_ms: int = 0
    id: str = ""


@dataclass
class Rule:
    """A validated rule as a node holds it."""

    id: str
    point: str
    action: Action
    method: str = ""
    peer: str = ""
    delay_ms: int = 0
    fail_code: grpc.StatusCode | None = None
    fail_message: str = ""
    probability: float | None = None
    expire_after_ms: int = 0
    expires_at_ms: int = 0
    """Wall-clock millis after which the rule is gone; 0 for never."""
    hits: int = 0
    _method_re: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def applies(self, point: str, method: str, peer: str) -> bool:
        if self.point != point and not (self.point == RPC and point in (RPC_IN, RPC_OUT)):
            return False
        if self.peer and self.peer != peer:
            return False
        return self._method_re is None or self._method_re.fullmatch(method) is not None

    def expired(self, now_ms: int) -> bool:
        return self.expires_at_ms != 0 and now_ms >= self.expires_at_ms

    def describe(self) -> str:
        what = {Action.DROP: "drop", Action.DELAY: f"delay {self.delay_ms} ms",
                Action.FAIL: f"fail {self.fail_code.name if self.fail_code else ''}"}[self.action]
        scope = "".join([f" method {self.method}" if self.method else "", f" peer {self.peer}" if self.peer else ""])
        return f"rule {self.id}: {what} at {self.point}{scope}"


def _check_peer(peer: str) -> None:
    host, sep, port = peer.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"peer {peer!r} is not host:port: give the other node's address as peers dial it "
                         "(a BE's be_port, the FE's rpc_port, a Kafka broker), e.g. '127.0.0.1:9060', "
                         "or leave it empty for any peer")


def _compile_method(method: str, point: str) -> re.Pattern[str] | None:
    if not method:
        return None
    if point not in RPC_POINTS:
        raise ValueError(f"field 'method' applies to the RPC points ({', '.join(RPC_POINTS)}) only; "
                         f"leave it empty for the named point {point!r}")
    if not method.startswith(_METHOD_START) or any(ch.isspace() for ch in method):
        raise ValueError(f"method {method!r} is not a full method pattern: expected "
                         "'/<package>.<Service>/<Method>' with fnmatch wildcards (* ? [..]), e.g. "
                         "'/tabletsim.v1.BackendService/WriteRows', '/tabletsim.v1.FrontendService/*' or '*/Heartbeat'")
    try:
        return re.compile(fnmatch.translate(method))
    except re.error as exc:
        raise ValueError(f"method pattern {method!r} is not a valid fnmatch pattern: {exc}") from None


def build_rule(spec: RuleSpec, points: Collection[str], rule_id: str, now_ms: int) -> Rule:
    """Validate ``spec`` against a node's named ``points``; raises ValueError naming what is wrong
    and what is allowed."""
    if spec.point not in RPC_POINTS and spec.point not in points:
        given = f"unknown point {spec.point!r}" if spec.point else "field 'point' is required"
        raise ValueError(f"{given}; allowed: {', '.join(RPC_POINTS)} (RPCs) or a named point of this node: "
                         f"{', '.join(points) or 'none'}")
    try:
        action = Action(spec.action)
    except ValueError:
        given = f"unknown action {spec.action!r}" if spec.action else "field 'action' is required"
        raise ValueError(f"{given}; allowed: {', '.join(a.value for a in Action)}") from None
    method_re = _compile_method(spec.method, spec.point)
    if spec.peer:
        if spec.point in PEERLESS_POINTS:
            raise ValueError(f"the point {spec.point!r} has no peer: leave 'peer' empty "
                             f"(points with a peer: rpc, rpc.in, rpc.out, {', '.join(BE_POINTS)})")
        _check_peer(spec.peer)
    if action is Action.DELAY:
        if spec.delay_ms <= 0:
            raise ValueError("a DELAY rule needs delay_ms > 0 (milliseconds to wait)")
    elif spec.delay_ms:
        raise ValueError(f"delay_ms applies to DELAY rules only; this rule is {action.value}")
    fail_code = None
    if action is Action.FAIL:
        name = (spec.fail_code or "INTERNAL").upper()
        fail_code = FAIL_CODES.get(name)
        if fail_code is None:
            raise ValueError(f"unknown fail_code {spec.fail_code!r}: give a gRPC status name, one of "
                             f"{', '.join(FAIL_CODES)} (empty: INTERNAL)")
    elif spec.fail_code or spec.fail_message:
        raise ValueError(f"fail_code and fail_message apply to FAIL rules only; this rule is {action.value}")
    p = spec.probability
    if p is not None and (math.isnan(p) or not 0 < p <= 1):
        raise ValueError(f"probability {p!r} is outside (0, 1]: give the chance that a matching call is hit, "
                         "e.g. 0.5, or leave it unset for always")
    if spec.expire_after_ms < 0:
        raise ValueError(f"expire_after_ms {spec.expire_after_ms} is negative: give milliseconds, 0 for never")
    return Rule(
        id=rule_id, point=spec.point, action=action, method=spec.method, peer=spec.peer,
        delay_ms=spec.delay_ms, fail_code=fail_code,
        fail_message=spec.fail_message if action is Action.FAIL else "",
        probability=p, expire_after_ms=spec.expire_after_ms,
        expires_at_ms=now_ms + spec.expire_after_ms if spec.expire_after_ms else 0,
        _method_re=method_re,
    )


class RuleTable:
    """One node's rules, in the order they were added; expired rules are dropped as they are met."""

    def __init__(self, points: Collection[str], *, clock_ms: Callable[[], int],
                 random: Callable[[], float]) -> None:
        self._points = tuple(points)
        self._clock_ms = clock_ms
        self._random = random
        self._rules: dict[str, Rule] = {}
        self._next_id = 1

    def __bool__(self) -> bool:
        return bool(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def add(self, spec: RuleSpec) -> Rule:
        """Validate and add a rule; an id already in use replaces that rule. Raises ValueError."""
        if spec.id and not _ID.fullmatch(spec.id):
            raise ValueError(f"rule id {spec.id!r}: use 1-64 letters, digits, '.', '_' or '-', "
                             "or leave it empty for one the node picks")
        self._purge()
        if spec.id not in self._rules and len(self._rules) >= MAX_RULES:
            raise ValueError(f"this node already holds {MAX_RULES} rules, the most it keeps: "
                             "remove or clear some first")
        rule = build_rule(spec, self._points, spec.id or self._new_id(), self._clock_ms())
        self._rules[rule.id] = rule
        return rule

    def _new_id(self) -> str:
        while str(self._next_id) in self._rules:
            self._next_id += 1
        rule_id = str(self._next_id)
        self._next_id += 1
        return rule_id

    def remove(self, rule_id: str) -> bool:
        return self._rules.pop(rule_id, None) is not None

    def clear(self) -> int:
        removed = len(self._rules)
        self._rules.clear()
        return removed

    def rules(self) -> list[Rule]:
        self._purge()
        return list(self._rules.values())

    def match(self, point: str, method: str = "", peer: str = "") -> Rule | None:
        """The first rule that acts on this event (its hit counted), or None."""
        if not self._rules:
            return None
        now = self._clock_ms()
        for rule in list(self._rules.values()):
            if rule.expired(now):
                del self._rules[rule.id]
                continue
            if not rule.applies(point, method, peer):
                continue
            if rule.probability is not None and rule.probability < 1 and self._random() >= rule.probability:
                continue
            rule.hits += 1
            return rule
        return None

    def _purge(self) -> None:
        now = self._clock_ms()
        for rule in [r for r in self._rules.values() if r.expired(now)]:
            del self._rules[rule.id]

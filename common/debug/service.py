"""DebugService: add, remove, list and clear a node's debug rules (FE and BEs alike).

Served only by a node started with ``--enable-debug-points``, and only to callers with the
cluster token (common/rpc.py). Protobuf stops here: the rules are :mod:`common.debug.rules`
dataclasses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc

from common.debug.points import DebugPoints
from common.debug.rules import Rule, RuleSpec
from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import debug_pb2, debug_pb2_grpc
from common.rpc import servicer

log = logging.getLogger(__name__)

SERVICE_NAME = "tabletsim.v1.DebugService"


def spec_from_proto(rule: debug_pb2.DebugRule) -> RuleSpec:
    if rule.action == debug_pb2.DEBUG_ACTION_UNSPECIFIED:
        action = ""
    else:
        try:
            action = debug_pb2.DebugAction.Name(rule.action)
        except ValueError:
            action = f"DebugAction({rule.action})"
    return RuleSpec(
        point=rule.point, action=action, method=rule.method, peer=rule.peer, delay_ms=rule.delay_ms,
        fail_code=rule.fail_code, fail_message=rule.fail_message,
        probability=rule.probability if rule.HasField("probability") else None,
        expire_after_ms=rule.expire_after_ms, id=rule.id,
    )


def rule_to_proto(rule: Rule) -> debug_pb2.DebugRule:
    out = debug_pb2.DebugRule(
        id=rule.id, point=rule.point, method=rule.method, peer=rule.peer,
        action=debug_pb2.DebugAction.Value(rule.action.value), delay_ms=rule.delay_ms,
        fail_code=rule.fail_code.name if rule.fail_code else "", fail_message=rule.fail_message,
        expire_after_ms=rule.expire_after_ms, expires_at_ms=rule.expires_at_ms, hits=rule.hits,
    )
    if rule.probability is not None:
        out.probability = rule.probability
    return out


@servicer
class DebugServicer(debug_pb2_grpc.DebugServiceServicer):
    def __init__(self, debug: DebugPoints) -> None:
        self._debug = debug

    async def AddDebugRule(self, request, context):
        if not request.HasField("rule"):
            raise InvalidArgument("field 'rule' is required: {point, action, ...}; ListDebugRules names the points")
        try:
            rule = self._debug.rules.add(spec_from_proto(request.rule))
        except ValueError as exc:
            raise InvalidArgument(f"invalid debug rule: {exc}") from None
        log.warning("debug %s added on node %s (probability %s, expires at %d)", rule.describe(),
                    self._debug.node, rule.probability if rule.probability is not None else 1, rule.expires_at_ms)
        return debug_pb2.AddDebugRuleResponse(rule=rule_to_proto(rule))

    async def RemoveDebugRule(self, request, context):
        if not request.id:
            raise InvalidArgument("field 'id' is required: the id AddDebugRule answered (ListDebugRules shows them)")
        removed = self._debug.rules.remove(request.id)
        if removed:
            log.warning("debug rule %s removed on node %s", request.id, self._debug.node)
        return debug_pb2.RemoveDebugRuleResponse(removed=removed)

    async def ListDebugRules(self, request, context):
        return debug_pb2.ListDebugRulesResponse(
            rules=[rule_to_proto(r) for r in self._debug.rules.rules()],
            points=list(self._debug.points), node=self._debug.node)

    async def ClearDebugRules(self, request, context):
        removed = self._debug.rules.clear()
        if removed:
            log.warning("%d debug rules cleared on node %s", removed, self._debug.node)
        return debug_pb2.ClearDebugRulesResponse(removed=removed)


def served(debug: DebugPoints) -> tuple[tuple[str, ...], list[Callable[[grpc.aio.Server], None]]]:
    """(service names, server adders) of DebugService for a node: none when debug points are off."""
    if not debug.enabled:
        return (), []
    log.warning("debug points are on: node %s serves %s (named points: %s)", debug.node, SERVICE_NAME,
                ", ".join(debug.points))
    servicer_ = DebugServicer(debug)
    return (SERVICE_NAME,), [lambda server: debug_pb2_grpc.add_DebugServiceServicer_to_server(servicer_, server)]

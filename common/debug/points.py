"""A node's debug points at run time: its rules, its address, its named points, and the acting.

One :class:`DebugPoints` per node, built by FrontendNode / BackendNode and passed down to the
code that has a named point (no module-level instance). A node started without
``--enable-debug-points`` holds a disabled one: every check returns at once, no debug
interceptor is installed (only the one adding the node's address header), and DebugService is
not served.
"""

from __future__ import annotations

import asyncio
import random as _random
from collections.abc import Awaitable, Callable, Collection, Iterable

import grpc

from common.debug.interceptors import client_interceptors, server_interceptors
from common.debug.rules import RPC_IN, RPC_OUT, Action, Rule, RuleTable
from common.errors import InjectedFailure, TabletsimError, Unavailable
from common.timefmt import now_ms


class DebugPoints:
    def __init__(self, node: str, points: Collection[str], *, enabled: bool = True,
                 clock_ms: Callable[[], int] = now_ms, random: Callable[[], float] = _random.random,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.node = node
        """This node's address as its peers dial it (host:port); sent in every call it makes."""
        self.points = tuple(points)
        self.enabled = enabled
        self.rules = RuleTable(self.points, clock_ms=clock_ms, random=random)
        self.sleep = sleep

    @classmethod
    def disabled(cls, node: str = "") -> DebugPoints:
        """The instance of a node without debug points: checks cost an attribute test."""
        return cls(node, (), enabled=False)

    # ------------------------------------------------------------------ code points
    async def point(self, name: str, peer: str = "") -> None:
        """A named code point: DROP raises Unavailable, FAIL the rule's status, DELAY waits."""
        if not self.enabled or not self.rules:
            return
        if name not in self.points:
            raise ValueError(f"{name!r} is not a named point of this node; its points: {', '.join(self.points)}")
        rule = self.rules.match(name, "", peer)
        if rule is not None:
            await self.act(rule, f"{name} for peer {peer}" if peer else name)

    async def point_each(self, name: str, peers: Iterable[str]) -> None:
        """:meth:`point` once per peer, in order (e.g. every broker of a consumer)."""
        if not self.enabled or not self.rules:
            return
        for peer in peers:
            await self.point(name, peer)

    # ------------------------------------------------------------------ RPC points
    def check_rpc(self, point: str, method: str, peer: str) -> Rule | None:
        """The rule that acts on an RPC (``rpc.in`` or ``rpc.out``), its hit counted, or None."""
        if not self.enabled or not self.rules:
            return None
        assert point in (RPC_IN, RPC_OUT), point
        return self.rules.match(point, method, peer)

    # ------------------------------------------------------------------ acting
    def error_of(self, rule: Rule, what: str) -> TabletsimError | None:
        """The error a DROP or FAIL rule makes of ``what`` (a call or a code point); None for DELAY."""
        if rule.action is Action.DROP:
            return Unavailable(f"debug rule {rule.id} dropped {what} on node {self.node} "
                               "(as if the peer were unreachable)")
        if rule.action is Action.FAIL:
            code = rule.fail_code or grpc.StatusCode.INTERNAL
            message = rule.fail_message or f"injected {code.name}"
            return InjectedFailure(code, f"{message} (debug rule {rule.id} failed {what} with {code.name} "
                                         f"on node {self.node})")
        return None

    async def act(self, rule: Rule, what: str) -> None:
        error = self.error_of(rule, what)
        if error is not None:
            raise error
        await self.sleep(rule.delay_ms / 1000)

    # ------------------------------------------------------------------ interceptors
    def client_interceptors(self, target: str) -> list:
        """Client hooks (common.rpc.CallHook) for a channel to ``target``: the node header always,
        the ``rpc.out`` checks when enabled."""
        return client_interceptors(self, target)

    def server_interceptors(self) -> list:
        """The ``rpc.in`` checks when enabled; nothing otherwise."""
        return server_interceptors(self) if self.enabled else []

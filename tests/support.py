"""Test support shared by unit and integration tests: deadline-bound waits and grpcurl."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Poll(Generic[T]):
    """One deadline-bound wait: each :meth:`once` runs the probe and says whether to go on."""

    def __init__(self, probe: Callable[[], T], timeout_s: float, what: str) -> None:
        self._probe = probe
        self._timeout_s = timeout_s
        self._what = what
        self._deadline = time.monotonic() + timeout_s
        self._last_error = "never became true"

    def once(self) -> T | None:
        """The probe's value when truthy; None to poll again; AssertionError past the deadline."""
        try:
            value = self._probe()
            if value:
                return value
        except AssertionError as exc:
            self._last_error = str(exc)
        if time.monotonic() >= self._deadline:
            raise AssertionError(f"timed out after {self._timeout_s:.1f} s waiting for {self._what}: "
                                 f"{self._last_error}")
        return None


def assert_eventually(
    probe: Callable[[], T], *, timeout_s: float, interval_s: float = 0.1, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns a truthy value or raise AssertionError at the deadline.

    ``probe`` may raise AssertionError while the condition does not hold yet; the last such
    message is reported when the deadline passes.
    """
    poll = _Poll(probe, timeout_s, what)
    while (value := poll.once()) is None:
        time.sleep(interval_s)
    return value


async def pause(seconds: float) -> None:
    """Give the loop to others for ``seconds`` (a timed wait on an event nobody sets)."""
    try:
        await asyncio.wait_for(asyncio.Event().wait(), seconds)
    except TimeoutError:
        pass


async def eventually(probe: Callable[[], T], *, timeout_s: float, what: str, interval_s: float = 0.05) -> T:
    """:func:`assert_eventually` on an event loop: the loop runs other work between polls."""
    poll = _Poll(probe, timeout_s, what)
    while (value := poll.once()) is None:
        await pause(interval_s)
    return value


GRPCURL = os.path.join(os.path.dirname(sys.executable), "grpcurl")


@dataclass
class GrpcurlResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else {}

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def grpcurl(
    address: str,
    method: str | None = None,
    data: dict | None = None,
    *,
    headers: dict[str, str] | None = None,
    timeout_s: float = 30.0,
    extra: list[str] | None = None,
) -> GrpcurlResult:
    """Run the real grpcurl as an operator would: ``grpcurl -plaintext [-H ..] [-d ..] addr method``."""
    cmd = [GRPCURL, "-plaintext", "-max-time", str(int(timeout_s))]
    for key, value in (headers or {}).items():
        cmd += ["-H", f"{key}: {value}"]
    stdin = None
    if data is not None:
        cmd += ["-d", "@"]  # the request on standard input: no size limit of a command-line argument
        stdin = json.dumps(data)
    cmd += list(extra or [])
    cmd.append(address)
    if method is None:
        cmd.append("list")
    else:
        cmd.append(method)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 5,
                          input=stdin if stdin is not None else "")
    return GrpcurlResult(proc.returncode, proc.stdout, proc.stderr)


class RpcError(AssertionError):
    """A grpcurl call that failed: ``code`` is grpcurl's status name (e.g. 'InvalidArgument')."""

    def __init__(self, method: str, stderr: str) -> None:
        self.code = ""
        self.message = stderr.strip()
        for line in stderr.splitlines():
            line = line.strip()
            if line.startswith("Code:"):
                self.code = line.split(":", 1)[1].strip()
            elif line.startswith("Message:"):
                self.message = line.split(":", 1)[1].strip()
        super().__init__(f"{method}: {self.code}: {self.message}")


class Admin:
    """AdminService through the real grpcurl: ``admin.call('ShowTables', db='d')``.

    ``address`` is one FE, or several comma-separated (``"h:9020,h:9021"``): any FE answers
    (a follower forwards writes to the leader), and a call that cannot reach one FE goes to the
    next. ``self.address`` is the FE that answered last."""

    def __init__(self, address: str, headers: dict[str, str] | None = None) -> None:
        self.addresses = [a.strip() for a in address.split(",") if a.strip()]
        self.address = self.addresses[0]
        self.headers = headers

    def call(self, method: str, request: dict | None = None, *, timeout_s: float = 60.0, **fields: Any) -> Any:
        payload = {**(request or {}), **fields}
        start = self.addresses.index(self.address)
        for address in self.addresses[start:] + self.addresses[:start]:
            res = grpcurl(address, f"tabletsim.v1.AdminService/{method}", payload,
                          headers=self.headers, timeout_s=timeout_s)
            if res.ok:
                self.address = address
                return res.json
            error = RpcError(method, res.stderr)
            if error.code:  # the FE answered (grpcurl prints no status when it could not dial)
                raise error
        raise error

    def answers(self) -> bool:
        """True once the FE serves AdminService (e.g. after a restart)."""
        try:
            self.call("ShowDatabases")
            return True
        except AssertionError:
            return False

    def error(self, method: str, request: dict | None = None, **fields: Any) -> RpcError:
        """Call ``method`` expecting a failure; returns the error."""
        try:
            result = self.call(method, request, **fields)
        except RpcError as exc:
            return exc
        raise AssertionError(f"{method} succeeded but should have failed: {result}")


def query_ids(fe_address: str, db: str, table: str, column: str = "id", limit: int = 10_000_000) -> list[int]:
    """Every value of an integer column, read through the Python client (bulk data, not for grpcurl)."""
    import asyncio

    from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
    from common.rpc import admin_channel

    async def read() -> list[int]:
        async with admin_channel(fe_address) as channel:
            resp = await admin_pb2_grpc.AdminServiceStub(channel).Query(
                admin_pb2.QueryRequest(db=db, table=table, columns=[column], limit=limit), timeout=120)
            return [int(r.values[0]) for r in resp.rows]

    return asyncio.run(read())


def exactly_once(ids: list[int], expected: range | list[int]) -> tuple[list[int], list[int]]:
    """(missing, duplicated) ids."""
    from collections import Counter

    seen = Counter(ids)
    missing = [i for i in expected if seen[i] == 0]
    duplicated = sorted(i for i, n in seen.items() if n > 1)
    return missing, duplicated

"""A real single-member etcd for tests, and async helpers around it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from deploy.etcd import INSTALL_HINT, SingleEtcd

T = TypeVar("T")


def etcd_fixture(tmp_path_factory) -> Iterator[SingleEtcd]:
    """Start one etcd on free loopback ports (stopped by pid afterwards). A missing etcd fails
    the run with the way to install it: these tests are never skipped."""
    try:
        etcd = SingleEtcd(str(tmp_path_factory.mktemp("etcd")))
        etcd.start()
    except RuntimeError as exc:
        if str(exc) == INSTALL_HINT:
            pytest.fail(INSTALL_HINT, pytrace=False)
        raise
    try:
        yield etcd
    finally:
        etcd.stop()


async def pause(seconds: float) -> None:
    """Give the loop to others for ``seconds`` (a timed wait on an event nobody sets)."""
    try:
        await asyncio.wait_for(asyncio.Event().wait(), seconds)
    except TimeoutError:
        pass


async def eventually(probe: Callable[[], T], *, timeout_s: float, what: str, interval_s: float = 0.05) -> T:
    """Poll ``probe`` on the loop until it is truthy; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout_s
    last = "never became true"
    while True:
        try:
            value = probe()
            if value:
                return value
        except AssertionError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f} s waiting for {what}: {last}")
        await pause(interval_s)

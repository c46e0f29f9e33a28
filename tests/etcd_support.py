"""A real single-member etcd for tests (waits: tests/support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.etcd import INSTALL_HINT, SingleEtcd


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

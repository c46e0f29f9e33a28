"""Every RPC the protos declare is implemented by our servicers.

The generated base classes in common/gen answer UNIMPLEMENTED (``NotImplementedError``) for a
method nobody overrides; this test fails if a declared RPC is left to that default.
"""

from __future__ import annotations

import pytest

from be.service.backend import BackendServicer
from common.debug.service import DebugServicer
from common.gen.tabletsim.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    backend_pb2,
    backend_pb2_grpc,
    debug_pb2,
    debug_pb2_grpc,
    frontend_pb2,
    frontend_pb2_grpc,
)
from fe.service.admin import AdminServicer
from fe.service.frontend import FrontendServicer

SERVICES = [
    (admin_pb2, "AdminService", AdminServicer, admin_pb2_grpc.AdminServiceServicer),
    (frontend_pb2, "FrontendService", FrontendServicer, frontend_pb2_grpc.FrontendServiceServicer),
    (backend_pb2, "BackendService", BackendServicer, backend_pb2_grpc.BackendServiceServicer),
    (debug_pb2, "DebugService", DebugServicer, debug_pb2_grpc.DebugServiceServicer),
]


@pytest.mark.parametrize("module, service, servicer, base", SERVICES, ids=[s[1] for s in SERVICES])
def test_every_declared_rpc_is_implemented(module, service, servicer, base):
    methods = [m.name for m in module.DESCRIPTOR.services_by_name[service].methods]
    assert methods
    generated_default = [m for m in methods if getattr(servicer, m).__qualname__.startswith(base.__name__ + ".")]
    assert generated_default == [], f"{service} leaves {generated_default} to the generated UNIMPLEMENTED stub"

"""AdminService calls to whichever FE of a LocalCluster can answer them (the chaos driver's client).

With one FE this is one channel, as before. With more (``make cluster FES=3``) it keeps a channel
to every FE and sends each call to the preferred one (the leader, when the caller knows it),
then to the others: a follower serves reads from its replayed state and forwards writes to the
leader, so any FE that answers will do. An FE the caller holds down on purpose (killed or
SIGSTOPped by a fault) is skipped; a call to it would only wait for its deadline. A call goes to
the next FE only when the one tried answered UNAVAILABLE (it is gone, or it knows no leader to
forward to), never after an answer that may have acted.

    pool = FrontendPool({"fe0": "127.0.0.1:9020", ...}, options)
    admin = pool.admin            # an AdminServiceStub look-alike: await admin.ShowBackends(req, timeout=2)
    pool.prefer("fe1"); pool.avoid("fe0"); pool.allow("fe0")
    await pool.close()
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from common.gen.tabletsim.v1 import admin_pb2_grpc


def no_frontend(details: str) -> grpc.aio.AioRpcError:
    """The error of a call with nobody to ask (every FE held down): UNAVAILABLE, as a gone FE's."""
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class FrontendPool:
    def __init__(self, addresses: dict[str, str], options: Sequence[tuple[str, object]] = ()) -> None:
        if not addresses:
            raise ValueError("a FrontendPool needs at least one FE address")
        self.addresses = dict(addresses)
        self._channels = {name: grpc.aio.insecure_channel(address, options=list(options))
                          for name, address in self.addresses.items()}
        self._stubs = {name: admin_pb2_grpc.AdminServiceStub(ch) for name, ch in self._channels.items()}
        self.preferred = next(iter(self.addresses))
        self.last_answered = ""  # the FE that answered the last call
        self._avoided: set[str] = set()
        self.admin = _PoolStub(self)

    def stub(self, name: str) -> admin_pb2_grpc.AdminServiceStub:
        """The plain stub of one FE (for questions to that FE itself, e.g. its ShowFrontends)."""
        return self._stubs[name]

    def prefer(self, name: str | None) -> None:
        """Ask ``name`` first (the leader, when known); None or an unknown name changes nothing."""
        if name in self._stubs:
            self.preferred = name

    def avoid(self, name: str) -> None:
        self._avoided.add(name)

    def allow(self, name: str) -> None:
        self._avoided.discard(name)

    def order(self) -> list[str]:
        """The FEs a call tries, in order: the preferred one, then the others by name."""
        names = [self.preferred] + [n for n in self.addresses if n != self.preferred]
        return [n for n in names if n not in self._avoided]

    async def call(self, method: str, request, **kwargs):
        names = self.order()
        if not names:
            raise no_frontend(f"every FE is held down by a fault ({', '.join(sorted(self._avoided))})")
        for i, name in enumerate(names):
            try:
                answer = await getattr(self._stubs[name], method)(request, **kwargs)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or i == len(names) - 1:
                    raise
                continue
            self.last_answered = name
            return answer
        raise AssertionError("unreachable: the last FE's error is raised")

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    async def __aenter__(self) -> FrontendPool:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class _PoolStub:
    """``await stub.Method(request, timeout=..)`` like an AdminServiceStub, through the pool."""

    def __init__(self, pool: FrontendPool) -> None:
        self._pool = pool

    def __getattr__(self, method: str):
        if not method[:1].isupper():
            raise AttributeError(method)

        async def call(request, **kwargs):
            return await self._pool.call(method, request, **kwargs)

        return call

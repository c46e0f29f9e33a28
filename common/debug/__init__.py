"""Debug points: Doris' named hooks, over gRPC (rules in :mod:`.rules`, the runtime in :mod:`.points`,
the RPC side in :mod:`.interceptors`, DebugService in :mod:`.service`)."""

from common.debug.interceptors import NODE_HEADER, caller_node
from common.debug.points import DebugPoints
from common.debug.rules import (
    BE_CLONE_MIDDLE,
    BE_KAFKA_CONSUME,
    BE_POINTS,
    BE_WRITE_BEFORE_ACK,
    FE_POINTS,
    FE_TXN_COMMIT_AFTER_JOURNAL,
    FE_TXN_COMMIT_BEFORE_JOURNAL,
    FE_TXN_PUBLISH_BEFORE_SEND,
    NAMED_POINTS,
    RPC,
    RPC_IN,
    RPC_OUT,
)

__all__ = [
    "BE_CLONE_MIDDLE", "BE_KAFKA_CONSUME", "BE_POINTS", "BE_WRITE_BEFORE_ACK", "FE_POINTS",
    "FE_TXN_COMMIT_AFTER_JOURNAL", "FE_TXN_COMMIT_BEFORE_JOURNAL", "FE_TXN_PUBLISH_BEFORE_SEND",
    "NAMED_POINTS", "NODE_HEADER", "RPC", "RPC_IN", "RPC_OUT", "DebugPoints", "caller_node",
]

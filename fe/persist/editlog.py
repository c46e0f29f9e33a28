"""The FE edit log and image, kept in one RocksDB under the FE meta dir.

Layout (raw keys):
    b"log/" + 8-byte big-endian seq  ->  orjson {"op": str, "data": {...}}
    b"image"                         ->  orjson {"seq": last seq folded in, "state": {...}}

Every append is a synced write: once ``append`` returns, the record survives a SIGKILL.
A checkpoint writes the image and deletes the records it folds in, in one synced batch, so
start-up is "load the image, replay the tail".
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from typing import Any

import orjson
from rocksdict import Options, Rdict, WriteBatch, WriteOptions

log = logging.getLogger(__name__)

_LOG_PREFIX = b"log/"
_IMAGE_KEY = b"image"


def _log_key(seq: int) -> bytes:
    return _LOG_PREFIX + struct.pack(">Q", seq)


@dataclass(frozen=True)
class Record:
    seq: int
    op: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Loaded:
    image_state: dict[str, Any] | None
    image_seq: int
    tail: list[Record]


class EditLog:
    """Append-only, synced log of metadata records plus the latest image."""

    def __init__(self, meta_dir: str) -> None:
        os.makedirs(meta_dir, exist_ok=True)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        self._db = Rdict(os.path.join(meta_dir, "editlog"), opts)
        self._sync = WriteOptions()
        self._sync.sync = True
        self._next_seq = 1

    def load(self) -> Loaded:
        """Read the image and every record after it; positions the next append."""
        raw_image = self._db.get(_IMAGE_KEY)
        image_state, image_seq = None, 0
        if raw_image is not None:
            image = orjson.loads(raw_image)
            image_state, image_seq = image["state"], image["seq"]
        tail: list[Record] = []
        for key, value in self._db.items(from_key=_log_key(image_seq + 1)):
            if not key.startswith(_LOG_PREFIX):
                break
            (seq,) = struct.unpack(">Q", key[len(_LOG_PREFIX):])
            rec = orjson.loads(value)
            tail.append(Record(seq, rec["op"], rec["data"]))
        last = tail[-1].seq if tail else image_seq
        self._next_seq = last + 1
        return Loaded(image_state, image_seq, tail)

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def append(self, op: str, data: dict[str, Any]) -> int:
        """Write one record, synced, and return its sequence number."""
        seq = self._next_seq
        self._db.put(_log_key(seq), orjson.dumps({"op": op, "data": data}), self._sync)
        self._next_seq = seq + 1
        return seq

    def checkpoint(self, state: dict[str, Any], seq: int) -> None:
        """Store ``state`` as the image covering records up to ``seq`` and drop those records."""
        batch = WriteBatch(raw_mode=True)
        batch.put(_IMAGE_KEY, orjson.dumps({"seq": seq, "state": state}))
        batch.delete_range(_log_key(0), _log_key(seq + 1))
        self._db.write(batch, self._sync)
        log.info("checkpoint: image at seq %d written, log records up to %d dropped", seq, seq)

    def close(self) -> None:
        self._db.close()

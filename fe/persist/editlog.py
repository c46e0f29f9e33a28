"""The FE edit log in RocksDB and the image beside it, under the FE meta dir.

Layout:
    editlog/ (RocksDB, raw keys)
        b"log/" + 8-byte big-endian seq  ->  orjson {"op": str, "data": {...}}
        b"image"                         ->  orjson {"seq": last seq folded in, "file": "image.<seq>"}
    image/image.<seq>                    ->  orjson {"seq": seq, "state": {...}}

Records are written in groups: :meth:`EditLog.write` puts any number of records in one RocksDB
WriteBatch and syncs the WAL once (group commit, driven by fe/persist/groupcommit.py); once it
returns, the records survive a SIGKILL and a power cut. The sync is ``flush_wal(sync=True)``
after an unsynced write, not a synced write: rocksdict keeps the GIL for a whole ``write`` (a
synced one included) but lets it go while the WAL syncs, so a slow disk stalls the writer thread,
never the event loop. :meth:`EditLog.prepare` (seq and bytes, on the caller's thread) and
:meth:`EditLog.write` may run on different threads; every RocksDB call holds one lock, so the
handle is used by one thread at a time.

A checkpoint writes the image file (temporary name, fsync, rename, fsync of the directory), then
points the log at it and deletes the records it folds in, in one synced batch; an image that is
not pointed at yet is ignored, so a crash at any step leaves the previous image and its tail.
Start-up is "load the image, replay the tail". (An image stored inline under b"image" with a
"state" field, as earlier versions wrote it, is still read.)

``checkpoint`` may run in a worker thread while the event loop appends: the image goes to a
plain file, whose writes release the GIL, and is encoded in pieces of bounded size
(:func:`encode_chunks`), so the loop gets the interpreter back between pieces. RocksDB writes
through rocksdict keep the GIL, which is why a 50 MB image is not a RocksDB value.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from rocksdict import Options, Rdict, WriteBatch, WriteOptions

log = logging.getLogger(__name__)

_LOG_PREFIX = b"log/"
_IMAGE_KEY = b"image"
_IMAGE_PREFIX = "image."
_TMP_SUFFIX = ".part"
# a piece of the image is encoded in one orjson call, which holds the GIL: about 20k values
# (~0.5 MB of JSON) take a few milliseconds
CHUNK_VALUES = 20_000
_WRITE_BYTES = 1 << 20


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


def _weight(obj: Any) -> int:
    """About how many JSON values ``obj`` holds, sampling the first element of each list."""
    if isinstance(obj, dict):
        return 1 + sum(1 + _weight(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return 1 + (len(obj) * _weight(obj[0]) if obj else 0)
    return 1


def encode_chunks(obj: Any, budget: int = CHUNK_VALUES) -> Iterator[bytes]:
    """``orjson.dumps(obj)`` in pieces: a container heavier than ``budget`` is opened and its
    members are encoded apart (list members in runs under the budget). The concatenation is
    byte-for-byte what ``orjson.dumps`` gives."""
    if _weight(obj) <= budget or not isinstance(obj, dict | list | tuple) or not obj:
        yield orjson.dumps(obj)
        return
    if isinstance(obj, dict):
        sep = b"{"
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"Dict key must be str, not {type(key).__name__} (key {key!r})")
            yield sep + orjson.dumps(key) + b":"
            yield from encode_chunks(value, budget)
            sep = b","
        yield b"}"
        return
    yield b"["
    sep = b""
    run: list[Any] = []
    run_weight = 0
    for item in obj:
        w = _weight(item)
        if run and (w > budget or run_weight + w > budget):
            yield sep + orjson.dumps(run)[1:-1]
            sep, run, run_weight = b",", [], 0
        if w > budget:
            yield sep
            yield from encode_chunks(item, budget)
            sep = b","
        else:
            run.append(item)
            run_weight += w
    if run:
        yield sep + orjson.dumps(run)[1:-1]
    yield b"]"


def release(obj: Any, budget: int = CHUNK_VALUES) -> None:
    """Empty a big JSON-like state in place, piece by piece, so that no single free of it holds
    the GIL for long (dropping the last reference to a 50 MB tree frees it in one go)."""
    stack = [obj]
    while stack:
        node = stack.pop()
        if _weight(node) <= budget:
            continue
        if isinstance(node, dict):
            while node:
                _, value = node.popitem()
                if isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            while node:
                weight = _weight(node[-1])
                if weight > budget:
                    stack.append(node.pop())
                else:
                    del node[-max(1, budget // weight):]


WRITE_BUFFER_BYTES = 4 * 1024 * 1024


class ImageDir:
    """Image files of one FE: ``<meta dir>/image/image.<seq>``, each written under a temporary
    name, fsynced, renamed and the directory fsynced, so a file with the final name is whole.
    The RocksDB edit log points at its image (b"image"); the etcd journal (fe/persist/etcdlog.py)
    keeps no log locally and takes the newest whole file."""

    def __init__(self, meta_dir: str) -> None:
        self.path = os.path.join(meta_dir, "image")
        os.makedirs(self.path, exist_ok=True)

    def write(self, state: dict[str, Any], seq: int) -> tuple[str, int]:
        """Write the image of ``seq``; returns its file name and size in bytes."""
        name = f"{_IMAGE_PREFIX}{seq}"
        path = os.path.join(self.path, name)
        tmp = path + _TMP_SUFFIX
        size = 0
        with open(tmp, "wb") as f:
            pending: list[bytes] = []
            pending_bytes = 0
            for piece in encode_chunks({"seq": seq, "state": state}):
                pending.append(piece)
                pending_bytes += len(piece)
                if pending_bytes >= _WRITE_BYTES:
                    f.write(b"".join(pending))
                    size += pending_bytes
                    pending, pending_bytes = [], 0
            f.write(b"".join(pending))
            size += pending_bytes
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._fsync_dir()
        return name, size

    def read(self, name: str, seq: int) -> dict[str, Any]:
        path = os.path.join(self.path, name)
        try:
            with open(path, "rb") as f:
                image = orjson.loads(f.read())
        except FileNotFoundError:
            raise RuntimeError(
                f"the edit log points at image {path} (seq {seq}), which is missing: the meta dir "
                "was changed by hand; restore that file or the whole meta dir from a backup"
            ) from None
        if image.get("seq") != seq:
            raise RuntimeError(f"image {path} holds seq {image.get('seq')} but the edit log expects {seq}")
        return image["state"]

    def newest(self) -> tuple[str, int] | None:
        """The newest whole image file and its seq (None: no image yet)."""
        best: tuple[str, int] | None = None
        for name in os.listdir(self.path):
            if not name.startswith(_IMAGE_PREFIX) or name.endswith(_TMP_SUFFIX):
                continue
            try:
                seq = int(name[len(_IMAGE_PREFIX):])
            except ValueError:
                continue
            if best is None or seq > best[1]:
                best = (name, seq)
        return best

    def _fsync_dir(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def drop_all_but(self, keep: str) -> None:
        for name in os.listdir(self.path):
            if name.startswith(_IMAGE_PREFIX) and name != keep:
                try:
                    os.remove(os.path.join(self.path, name))
                except FileNotFoundError:
                    pass


class EditLog:
    """Append-only, synced log of metadata records plus the latest image."""

    def __init__(self, meta_dir: str) -> None:
        os.makedirs(meta_dir, exist_ok=True)
        self._images = ImageDir(meta_dir)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        # records are small and appended once: a 4 MB memtable (RocksDB's default is 64 MB) keeps
        # the FE's memory flat over a long run instead of growing by every record until a flush
        opts.set_write_buffer_size(WRITE_BUFFER_BYTES)
        self._db = Rdict(os.path.join(meta_dir, "editlog"), opts)
        self._db_lock = threading.Lock()  # one thread at a time in RocksDB (the writer, a checkpoint)
        self._unsynced = WriteOptions()  # the WAL is synced apart (flush_wal), without the GIL
        self._next_seq = 1

    def load(self) -> Loaded:
        """Read the image and every record after it; positions the next append."""
        raw_image = self._db.get(_IMAGE_KEY)
        image_state, image_seq = None, 0
        if raw_image is not None:
            pointer = orjson.loads(raw_image)
            image_seq = pointer["seq"]
            if "state" in pointer:
                image_state = pointer["state"]
            else:
                image_state = self._images.read(pointer["file"], image_seq)
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
        """The last seq handed out by :meth:`prepare` (written or still on its way)."""
        return self._next_seq - 1

    def prepare(self, op: str, data: dict[str, Any]) -> tuple[int, bytes]:
        """Encode one record and give it the next seq; :meth:`write` stores it. Records must be
        written in the order of their seqs."""
        payload = orjson.dumps({"op": op, "data": data})
        seq = self._next_seq
        self._next_seq = seq + 1
        return seq, payload

    def write(self, records: list[tuple[int, bytes]]) -> None:
        """Store prepared records in one batch with one sync (the GIL is free during the sync)."""
        batch = WriteBatch(raw_mode=True)
        for seq, payload in records:
            batch.put(_log_key(seq), payload)
        self._write_synced(batch)

    def append(self, op: str, data: dict[str, Any]) -> int:
        """Write one record, synced, in this thread, and return its sequence number."""
        seq, payload = self.prepare(op, data)
        self.write([(seq, payload)])
        return seq

    def _write_synced(self, batch: WriteBatch) -> None:
        with self._db_lock:
            self._db.write(batch, self._unsynced)
            self._db.flush_wal(True)

    def checkpoint(self, state: dict[str, Any], seq: int) -> int:
        """Store ``state`` as the image covering records up to ``seq`` and drop those records.

        Safe in a worker thread while records are written (records after ``seq`` are kept), once
        records up to ``seq`` are written (the journal waits for that). ``state`` must not change
        meanwhile. Returns the image's size in bytes.
        """
        name, size = self._images.write(state, seq)
        batch = WriteBatch(raw_mode=True)
        batch.put(_IMAGE_KEY, orjson.dumps({"seq": seq, "file": name}))
        batch.delete_range(_log_key(0), _log_key(seq + 1))
        self._write_synced(batch)
        self._images.drop_all_but(name)
        log.info("checkpoint: image at seq %d written (%d bytes), log records up to %d dropped",
                 seq, size, seq)
        return size

    def close(self) -> None:
        with self._db_lock:
            self._db.close()

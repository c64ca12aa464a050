"""Every message through Redis is signed: HMAC-SHA256 with a per-run key.

Workers unpickle what they read, and unpickling runs code, so anything that can write
to the server (another user of a shared Redis, a process on a node the server listens
on) must not be able to inject a message. A message is `{d: payload, u: uid, s: mac}`:
the mac covers the run id, the key it was written to, a unique id (its writer's random
name and sequence number) and the payload, so an entry copied to another stream or run is
rejected, and a copy in its own stream is told apart by its uid (`unpack_once` for a
stream with one reader; the take script's set of seen ids for shared work streams).
A message that fails a check is logged, counted and dropped, never unpickled.

The key reaches local workers with their process arguments; a worker joining from
another node reads it from `HPCFLOW_RUN_KEY` (hex) or from a key file readable by its
owner only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from ...engines.protocol import dumps, loads
from ...errors import UsageError

KEY_ENV = "HPCFLOW_RUN_KEY"
KEY_BYTES = 32
log = logging.getLogger("hpcflow.redis")


class Signer:
    """Signs what one writer (a process) sends in one run, and checks what it reads."""

    def __init__(self, key: bytes, run_id: str):
        self.key = key
        self.run_id = run_id.encode()
        self.writer = secrets.token_hex(8).encode()  # this writer's name in every uid it makes
        self.seq = 0
        self.rejected = 0
        self.latest: dict[bytes, int] = {}  # writer -> last sequence number read (`unpack_once`)

    def pack(self, where: str, obj: Any) -> dict[bytes, bytes]:
        """The fields of a stream entry (or a value) carrying `obj` to `where`."""
        return self.pack_bytes(where, dumps(obj))

    def pack_bytes(self, where: str, payload: bytes) -> dict[bytes, bytes]:
        """`pack` of what is already pickled (the run's setup, by cloudpickle)."""
        self.seq += 1
        uid = self.writer + b"." + str(self.seq).encode()
        return {b"d": payload, b"u": uid, b"s": self._mac(where, uid, payload)}

    def unpack(self, where: str, fields: dict[bytes, bytes]) -> tuple[bool, Any]:
        """(True, obj) for an authentic message to `where`; (False, None) otherwise."""
        payload, uid, mac = fields.get(b"d"), fields.get(b"u"), fields.get(b"s")
        if payload is None or uid is None or mac is None:
            return self._reject("an unsigned message", where)
        if not hmac.compare_digest(mac, self._mac(where, uid, payload)):
            return self._reject("a forged message", where)
        return True, loads(payload)

    def unpack_once(self, where: str, fields: dict[bytes, bytes]) -> tuple[bool, Any]:
        """`unpack` for a stream this reader alone reads, in order: an entry not newer
        than the last one read from its writer is a copy or a replay, and is dropped."""
        ok, obj = self.unpack(where, fields)
        if not ok:
            return ok, obj
        writer, _, seq = fields[b"u"].rpartition(b".")
        n = int(seq)
        if n <= self.latest.get(writer, 0):
            return self._reject("a copied or replayed message", where)
        self.latest[writer] = n
        return True, obj

    def _reject(self, what: str, where: str) -> tuple[bool, None]:
        self.rejected += 1
        log.warning("rejected %s on %s", what, where)
        return False, None

    def _mac(self, where: str, uid: bytes, payload: bytes) -> bytes:
        message = b"\n".join((self.run_id, where.encode(), uid, payload))
        return hmac.new(self.key, message, hashlib.sha256).digest()


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def key_from_env() -> bytes | None:
    text = os.environ.get(KEY_ENV)
    if not text:
        return None
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise UsageError(f"{KEY_ENV} must be the run key in hex") from None
    if len(key) < 16:
        raise UsageError(f"{KEY_ENV} is too short: use at least 16 bytes (32 hex digits)")
    return key


def write_private(path: str | os.PathLike, text: str) -> None:
    """Write a secret, readable by its owner only (created 0600, never world-readable)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def read_private(path: str | os.PathLike, what: str) -> str:
    """A secret from `path`, which must belong to this user and be unreadable by others:
    a file anyone could have written would let them sign what we unpickle."""
    path = Path(path)
    try:
        st = path.stat()
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{what} file {path} must belong to you and be private (chmod 600)")
    return text.strip()


def url_file(key_file: str | os.PathLike) -> Path:
    """Where a run with a private server writes its URL (password included): beside its key."""
    return Path(key_file).with_name("redis.url")


def write_key_file(path: str | os.PathLike, key: bytes) -> None:
    write_private(path, key.hex())


def read_key_file(path: str | os.PathLike) -> bytes:
    text = read_private(path, "run key")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"run key file {path} does not hold a hex key") from None

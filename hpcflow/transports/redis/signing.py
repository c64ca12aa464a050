"""Every message through Redis is signed: HMAC-SHA256 with a per-run key.

Workers unpickle what they read, and unpickling runs code, so anything that can write
to the server (another user of a shared Redis, a process on a node the server listens
on) must not be able to inject a message. A message is `{d: payload, s: mac}`; the mac
covers the key it was written to as well, so an entry copied to another stream is
rejected too. A message that fails the check is logged and dropped, never unpickled.

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
    def __init__(self, key: bytes):
        self.key = key
        self.rejected = 0

    def pack(self, where: str, obj: Any) -> dict[bytes, bytes]:
        """The fields of a stream entry (or a value) carrying `obj` to `where`."""
        payload = dumps(obj)
        return {b"d": payload, b"s": self._mac(where, payload)}

    def unpack(self, where: str, fields: dict[bytes, bytes]) -> tuple[bool, Any]:
        """(True, obj) for an authentic message to `where`; (False, None) otherwise."""
        payload, mac = fields.get(b"d"), fields.get(b"s")
        if payload is None or mac is None or not hmac.compare_digest(mac, self._mac(where, payload)):
            self.rejected += 1
            log.warning("rejected an unsigned or forged message on %s", where)
            return False, None
        return True, loads(payload)

    def _mac(self, where: str, payload: bytes) -> bytes:
        return hmac.new(self.key, where.encode() + b"\n" + payload, hashlib.sha256).digest()


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

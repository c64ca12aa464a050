"""Message signing and the run key: what a worker unpickles must carry the run's HMAC,
for the run and the stream it was written to, with a unique id; a key file must be its
owner's own and private."""

from __future__ import annotations

import os

import pytest

from hpcflow import UsageError
from hpcflow.transports.redis.keys import check_run_id, run_id_of
from hpcflow.transports.redis.signing import KEY_ENV, Signer, key_from_env, new_key, read_key_file, write_key_file


def test_a_signed_message_round_trips():
    s = Signer(new_key(), "run")
    assert s.unpack("stream", s.pack("stream", ("work", [1, 2]))) == (True, ("work", [1, 2]))
    assert s.rejected == 0


def test_unsigned_forged_and_moved_messages_are_rejected():
    key = new_key()
    s = Signer(key, "run")
    fields = s.pack("a", "payload")
    assert s.unpack("b", fields) == (False, None)  # copied to another stream
    assert s.unpack("a", {b"d": fields[b"d"], b"u": fields[b"u"]}) == (False, None)  # unsigned
    assert s.unpack("a", {**fields, b"s": b"x" * 32}) == (False, None)  # forged
    assert s.unpack("a", {**fields, b"u": fields[b"u"] + b"0"}) == (False, None)  # another uid
    assert Signer(key, "other-run").unpack("a", fields) == (False, None)  # another run with the same key
    assert Signer(new_key(), "run").unpack("a", fields) == (False, None)  # another run's key
    assert s.rejected == 4


def test_a_copy_or_replay_is_read_once():
    writer = Signer(new_key(), "run")
    reader = Signer(writer.key, "run")
    first, second = writer.pack("events", 1), writer.pack("events", 2)
    assert first[b"u"] != second[b"u"]
    assert reader.unpack_once("events", first) == (True, 1)
    assert reader.unpack_once("events", first) == (False, None)  # a copy
    assert reader.unpack_once("events", second) == (True, 2)
    assert reader.unpack_once("events", first) == (False, None)  # an old one, replayed
    assert reader.rejected == 2


def test_key_file_is_private_and_read_back(tmp_path):
    path = tmp_path / "run.key"
    key = new_key()
    write_key_file(path, key)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_key_file(path) == key


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "run.key"
    write_key_file(path, new_key())
    path.chmod(0o644)
    with pytest.raises(UsageError, match="must belong to you and be private"):
        read_key_file(path)


def test_key_from_environment(monkeypatch):
    key = new_key()
    monkeypatch.setenv(KEY_ENV, key.hex())
    assert key_from_env() == key
    monkeypatch.setenv(KEY_ENV, "not hex")
    with pytest.raises(UsageError, match="hex"):
        key_from_env()


def test_run_ids():
    assert check_run_id("20260101T000000Z-galaxy-dyn_redis") == "20260101T000000Z-galaxy-dyn_redis"
    with pytest.raises(UsageError):
        check_run_id("a b")
    assert run_id_of("my run*") == "my_run_"

"""Fencing: a worker the run has written off can never change it again.

Every worker has a lease key holding the random token of its incarnation, set by whoever
gave it its id (the coordinator, or the `hpcflow worker` supervisor). Every read that
takes work and every write a worker makes is one server-side script that first checks
the lease against the worker's token, then does everything else (XREADGROUP, or the
XADDs, XACKs and XDELs of a batch) in the same atomic step. Writing a worker off sets
its lease to FENCED: every later script of that worker fails, whatever connection it
comes through (redis-py's reconnects included), so what it took is replayed by the
coordinator without a late write ever landing beside the replay. The coordinator
itself, the only authority on who is written off, writes without a lease.
"""

from __future__ import annotations

import secrets

import redis

from .keys import GROUP, RunKeys

FENCED = "FENCED"  # the lease's value once written off, and the scripts' error
NO_RUN = "NORUN"  # no lease at all: the run is over and its keys are deleted

_CHECK = f"""
local lease = redis.call('GET', KEYS[1])
if not lease then return redis.error_reply('{NO_RUN}') end
if lease ~= ARGV[1] then return redis.error_reply('{FENCED}') end
"""

# KEYS: lease, seen set, control stream, then work streams by priority.
# ARGV: token, group, consumer, then a COUNT per work stream.
# Returns {stream, entries, copies} for the first stream with something new, else
# {0, last ids, copies} (where each stream ends, to wait for what comes after), or
# {0, {}, copies} when only copies were dropped (look again at once).
TAKE = (
    _CHECK
    + """
local copies = 0
for i = 3, #KEYS do
  local count = 1
  if i > 3 then count = ARGV[i] end
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', count, 'STREAMS', KEYS[i], '>')
  if r then
    local kept = {}
    for _, e in ipairs(r[1][2]) do
      local f, uid = e[2], false
      for j = 1, #f, 2 do
        if f[j] == 'u' then uid = f[j + 1] end
      end
      if uid and redis.call('SADD', KEYS[2], uid) == 0 then
        redis.call('XACK', KEYS[i], ARGV[2], e[1])
        redis.call('XDEL', KEYS[i], e[1])
        copies = copies + 1
      else
        kept[#kept + 1] = e
      end
    end
    if #kept > 0 then return {KEYS[i], kept, copies} end
  end
end
local last = {}
if copies == 0 then
  for i = 3, #KEYS do
    local e = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)
    if e[1] then last[#last + 1] = e[1][1] else last[#last + 1] = '0-0' end
  end
end
return {0, last, copies}
"""
)

# KEYS: lease, then the streams written. ARGV: token, group, then operations, each
# 'x' (XADD) or 'a' (XACK and XDEL), the index of its stream in KEYS, n, then n
# arguments (field, value, ... for XADD; entry ids for XACK).
PUT = (
    _CHECK
    + """
local i = 3
while i <= #ARGV do
  local key, n = KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
  local args = {}
  for j = 1, n do args[j] = ARGV[i + 2 + j] end
  if ARGV[i] == 'x' then
    redis.call('XADD', key, '*', unpack(args))
  else
    redis.call('XACK', key, ARGV[2], unpack(args))
    redis.call('XDEL', key, unpack(args))
  end
  i = i + 3 + n
end
return 1
"""
)

# KEYS: lease, setup, events. ARGV: the EXITED event's fields. Writes the worker off
# and reports it, unless the run is over (its keys are not made again).
REPORT_EXIT = f"""
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('SET', KEYS[1], '{FENCED}')
redis.call('XADD', KEYS[3], '*', unpack(ARGV))
return 1
"""


def grant(r: redis.Redis, keys: RunKeys, wid: int) -> str:
    """A new worker's lease, and its control stream: the token it writes with."""
    token = secrets.token_hex(16)
    p = r.pipeline(transaction=True)
    p.set(keys.lease(wid), token)
    p.xgroup_create(keys.control(wid), GROUP, id="0", mkstream=True)
    p.execute()
    return token


def write_off(r: redis.Redis | redis.client.Pipeline, keys: RunKeys, wids: list[int]) -> None:
    """Fence these workers: once this returns, nothing they send is applied."""
    if wids:
        r.mset({keys.lease(wid): FENCED for wid in wids})


def flat(fields: dict[bytes, bytes]) -> list[bytes]:
    """A stream entry's fields as XADD's arguments: field, value, ..."""
    return [x for kv in fields.items() for x in kv]


class Batch:
    """The writes of one PUT script, built up in order."""

    def __init__(self, lease: str, token: str):
        self.keys = [lease]
        self.args: list = [token, GROUP]

    def xadd(self, stream: str, fields: dict[bytes, bytes]) -> None:
        self._op("x", stream, flat(fields))

    def ack(self, stream: str, ids: list[bytes]) -> None:
        self._op("a", stream, ids)

    def _op(self, op: str, key: str, args: list) -> None:
        if key not in self.keys:
            self.keys.append(key)
        self.args += [op, self.keys.index(key) + 1, len(args), *args]

    def __bool__(self) -> bool:
        return len(self.args) > 2

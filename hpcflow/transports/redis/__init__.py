"""The Redis transport: the queues are Redis streams, so workers pull their own work and
workers on other nodes can join a run (`hpcflow worker`).

`keys` names a run's keys, `signing` authenticates every message, `server` connects to
(or starts) the server, `channel` is the worker's side, `broker` the coordinator's,
`join` the `hpcflow worker` command.
"""

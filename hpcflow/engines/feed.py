"""A root's inputs, handed out in chunks.

A root is called in order by its one instance, so its inputs go to it a chunk at a time
(`chunk_limit` of its measured service time), ROOT_AHEAD chunks at once: the next one
waits in its pipe (or stream) while it runs the current one, so a root never waits for a
round trip to the coordinator between two chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..inputs import feed_length
from .protocol import Chunk, chunk_id, dumps

ROOT_AHEAD = 2  # chunks of a root's inputs given out at once


@dataclass
class Feed:
    """The not yet handed-out part of a root's inputs."""

    items: int | list
    sent: int = 0
    in_flight: int = 0  # chunks given out and not reported: up to ROOT_AHEAD, so a root never waits for its next

    @property
    def remaining(self) -> int:
        return feed_length(self.items) - self.sent

    def take(self, root: str, n: int) -> Chunk:
        """The next `n` inputs as a chunk for instance 0 of `root`."""
        n = min(n, self.remaining)
        if isinstance(self.items, int):
            blob = None
        else:
            blob = dumps(self.items[self.sent : self.sent + n])
        c = Chunk(root, 0, n, blob, chunk_id(root, self.sent), 0, len(blob or b""))
        self.sent += n
        return c

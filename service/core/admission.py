"""Admission at the door: whether a request that has not been read yet is likely to find room in the queue.

The door sees a request before its body: it cannot know how many windows the request needs, only the queue's
free windows. Admitting whenever one window is free let every waiting client in at once as soon as a batch left
the queue; each was read, parsed and checked, and most were then refused at the queue, which had room for one
or two of them. Measured at 10x overload on 2 cores (81-frame requests with flip, a 16-window queue): that
parsing was 43% of the event loop's time, and the loop's CPU came out of the model's share.

So the door keeps a **reservation** per request it lets in, of the windows a typical request needs (a moving
average of the windows of recent requests), and admits only while the free windows cover the reservations
already held plus one more. A reservation ends when its request reaches the queue (``settle``) or after
``hold_s``, whichever is first, so a request that never arrives (a client that left, a body that failed to parse)
cannot hold room for long. This is an estimate: the queue's own check stays exact, and a request the door let in
can still be refused there. Only requests that fit the queue teach the typical size: one request of 40,000
windows (refused 413) once taught it a size no free room could ever cover, and the door refused everything after.
"""

from __future__ import annotations

import math
from collections import deque


class Door:
    """Reservations of queue room for requests admitted but not yet queued. Not thread-safe: the event loop's."""

    def __init__(self, capacity: int, *, hold_s: float = 1.0, weight: float = 0.2) -> None:
        if capacity < 1 or hold_s <= 0 or not 0 < weight <= 1:
            raise ValueError(
                f"capacity must be >= 1, hold_s > 0 and weight in (0, 1], got {capacity}, {hold_s} and {weight}"
            )
        self.capacity = capacity  # the queue's windows: an empty queue always admits one request
        self.hold_s = hold_s
        self.weight = weight
        self.typical = 1.0  # windows of a typical request; learnt from the requests that reach the queue
        self._held: deque[float] = deque()  # expiry times, oldest first

    @property
    def held(self) -> int:
        """Reservations held now (expired ones are dropped on the next ``admit``)."""
        return len(self._held)

    def admit(self, free: int, now: float) -> bool:
        """Reserve room for one more request if ``free`` windows cover the reservations held plus this one."""
        while self._held and self._held[0] <= now:
            self._held.popleft()
        need = math.ceil(self.typical)
        if (len(self._held) + 1) * need > free:
            return False
        self._held.append(now + self.hold_s)
        return True

    def settle(self, windows: int | None) -> None:
        """A request reached the queue (``windows``: how many it needed) or failed before it (None): one
        reservation ends, the oldest, and the typical size learns from ``windows`` if they fit the queue."""
        if self._held:
            self._held.popleft()
        if windows is not None and 0 < windows <= self.capacity:
            self.typical += self.weight * (windows - self.typical)

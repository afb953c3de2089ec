"""Publishing new / deleted / read events to live clients (SSE, WebSocket).

Every subscriber gets its own bounded queue; a client too slow to keep up loses
its oldest events rather than slowing ingest (it can reload the list).
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

QUEUE_SIZE = 1000


@dataclass
class Event:
    """``kind`` is "new", "deleted", "read" or "unread" ("closing" at shutdown);
    ``data`` is JSON-ready."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


class EventBus:
    """Fan-out of events to any number of subscribers on one event loop."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Event]] = set()
        self.closed = False

    def close(self) -> None:
        """Tell every subscriber to finish (a "closing" event): the server is stopping,
        and open event streams would otherwise hold up the HTTP shutdown."""
        self.closed = True
        self.publish("closing")

    def publish(self, kind: str, **data: Any) -> None:
        event = Event(kind, data)
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        if self.closed:
            queue.put_nowait(Event("closing"))
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._queues)


async def until_closing(queue: asyncio.Queue[Event],
                        keepalive: float | None) -> AsyncIterator[Event | None]:
    """A subscription's events as they come, None after ``keepalive`` quiet seconds
    (a chance to send a keep-alive); ends at the server's "closing" event."""
    while True:
        try:
            event = await asyncio.wait_for(queue.get(), keepalive)
        except asyncio.TimeoutError:
            yield None
            continue
        if event.kind == "closing":
            return
        yield event

"""Latest-wins scheduling: a slider dragged across its range must not queue a decode per pixel.

Each client's requests to one endpoint form a lane. A lane runs at most one request and holds
at most one pending; a newer request replaces the pending one, which is answered at once as
stale. Dragging a slider over 100 positions therefore decodes the first position, then the
last one the client sent while that ran, and so on: a handful of decodes, the final one always
for the slider's final position. Across lanes the model runs one request at a time, always on
the same worker thread: it is one set of weights on one device, parallel calls would only
share the same cores, and every new thread that calls into torch starts its own OpenMP team,
whose idle threads spin on the cores the working one needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["Lanes", "Stale"]

T = TypeVar("T")


class Stale(Exception):
    """A request replaced by a newer one in its lane before it ran."""


@dataclass
class _Lane:
    running: bool = False
    pending: asyncio.Future | None = None


@dataclass
class Lanes:
    """Lanes by key (client, endpoint); ``started`` counts requests handed to the model."""

    started: int = 0
    _lanes: dict[tuple[str, str], _Lane] = field(default_factory=dict)
    _worker: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="lmvae-explorer")
    )

    async def run(self, key: tuple[str, str], work: Callable[[], T]) -> T:
        """Run ``work`` on the model's thread when its lane is free (requests of other lanes
        queue there in turn); raise
        :class:`Stale` if a newer request of the same lane arrives first."""
        lane = self._lanes.setdefault(key, _Lane())
        if lane.running:
            if lane.pending is not None and not lane.pending.done():
                lane.pending.set_result(False)
            lane.pending = ticket = asyncio.get_running_loop().create_future()
            try:
                go = await ticket
            except asyncio.CancelledError:  # the client went away: pass on a lane handed over
                if ticket.done() and not ticket.cancelled() and ticket.result():
                    self._hand_over(key, lane)
                raise
            if not go:
                raise Stale("replaced by a newer request")
            # The finished request handed the lane over: it is still marked running.
        else:
            lane.running = True
        try:
            self.started += 1
            return await asyncio.get_running_loop().run_in_executor(self._worker, work)
        finally:
            self._hand_over(key, lane)

    def _hand_over(self, key: tuple[str, str], lane: _Lane) -> None:
        ticket, lane.pending = lane.pending, None
        if ticket is not None and not ticket.done():
            ticket.set_result(True)
        else:
            lane.running = False
            if self._lanes.get(key) is lane:
                del self._lanes[key]

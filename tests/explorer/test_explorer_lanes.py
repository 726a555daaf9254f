"""lmvae.explorer.lanes: a dragged slider runs a handful of decodes, the last for where it
stopped; stale requests are answered at once; other lanes are not dropped."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from lmvae.explorer.lanes import Lanes, Stale


def test_100_slider_events_run_at_most_3_decodes(app, explorer, monkeypatch):
    calls = []
    traverse = explorer.traverse

    def slow_traverse(**kw):
        calls.append(kw["value"])
        time.sleep(0.05)  # a decode that takes longer than the events take to arrive
        return traverse(**kw)

    monkeypatch.setattr(explorer, "traverse", slow_traverse)
    values = [round(-2.5 + 0.05 * i, 2) for i in range(100)]

    async def drag() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        headers = {"x-explorer-client": "slider-test"}
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765",
                                     headers=headers) as client:  # fmt: skip

            async def event(v: float) -> httpx.Response:
                body = {"sentence": "the cat sat", "dim": 1, "value": v}
                return await client.post("/api/traverse", json=body)

            tasks = []
            for v in values:  # events arrive one after another, as a drag sends them
                tasks.append(asyncio.create_task(event(v)))
                await asyncio.sleep(0)
            return await asyncio.gather(*tasks)

    started = app.state.lanes.started
    responses = asyncio.run(drag())
    assert len(calls) <= 3 and app.state.lanes.started - started == len(calls)
    assert calls[0] == values[0] and calls[-1] == values[-1]  # the final position is decoded
    ok = [r for r in responses if r.status_code == 200]
    stale = [r for r in responses if r.status_code == 409]
    assert len(ok) == len(calls) and len(ok) + len(stale) == 100
    assert all(r.json()["stale"] for r in stale)
    assert ok[-1].json()["value"] == values[-1]


def test_lanes_keep_one_running_and_one_pending():
    async def scenario() -> tuple[list, list]:
        lanes = Lanes()
        release = threading.Event()
        ran = []

        def work(tag):
            def run():
                if tag == "first":
                    release.wait(5)
                ran.append(tag)
                return tag

            return run

        first = asyncio.create_task(lanes.run(("c", "traverse"), work("first")))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(lanes.run(("c", "traverse"), work("second")))
        other = asyncio.create_task(lanes.run(("c", "reconstruct"), work("other")))
        await asyncio.sleep(0.01)
        third = asyncio.create_task(lanes.run(("c", "traverse"), work("third")))
        await asyncio.sleep(0.01)
        release.set()
        results = await asyncio.gather(first, second, third, other, return_exceptions=True)
        return results, ran

    results, ran = asyncio.run(scenario())
    assert results[0] == "first" and isinstance(results[1], Stale)
    assert results[2] == "third" and results[3] == "other"  # another lane is never dropped
    assert sorted(ran) == ["first", "other", "third"]


def test_a_failing_request_frees_its_lane():
    async def scenario():
        lanes = Lanes()

        def boom():
            raise RuntimeError("bug")

        with pytest.raises(RuntimeError):
            await lanes.run(("c", "x"), boom)
        return await lanes.run(("c", "x"), lambda: "next")

    assert asyncio.run(scenario()) == "next"

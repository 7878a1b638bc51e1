"""The direct delivery's way of running a callback: to its first suspension here, the rest awaited elsewhere."""

from __future__ import annotations

import asyncio

import pytest

from services.detector.delivery import start


async def test_a_callback_that_never_suspends_is_done_at_once() -> None:
    seen: list[int] = []

    async def callback() -> None:
        seen.append(1)

    assert start(callback()) is None
    assert seen == [1]


async def test_an_error_of_a_callback_that_never_suspends_is_raised_at_once() -> None:
    async def callback() -> None:
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        start(callback())


async def test_a_callback_that_waits_goes_on_from_where_it_stopped_when_its_rest_is_awaited() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    queue.put_nowait(0)
    steps: list[str] = []

    async def callback() -> str:
        steps.append("before")
        await queue.put(1)  # full: waits for a get
        steps.append("after")
        return "delivered"

    rest = start(callback())
    assert rest is not None and steps == ["before"]
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    assert queue.get_nowait() == 0
    assert await asyncio.wait_for(task, 5) == "delivered"
    assert steps == ["before", "after"] and queue.get_nowait() == 1


async def test_a_bare_turn_inside_the_callback_is_passed_on() -> None:
    async def callback() -> int:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return 7

    rest = start(callback())
    assert rest is not None
    assert await asyncio.wait_for(asyncio.ensure_future(rest), 5) == 7


async def test_an_error_after_the_wait_reaches_whoever_awaits_the_rest() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def callback() -> None:
        await gate
        raise KeyError("late")

    rest = start(callback())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    gate.set_result(None)
    with pytest.raises(KeyError, match="late"):
        await asyncio.wait_for(task, 5)


async def test_an_error_of_the_awaited_future_is_thrown_into_the_callback() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    caught: list[BaseException] = []

    async def callback() -> str:
        try:
            await gate
        except RuntimeError as exc:
            caught.append(exc)
            return "handled"
        return "not reached"

    rest = start(callback())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    gate.set_exception(RuntimeError("broker gone"))
    assert await asyncio.wait_for(task, 5) == "handled"
    assert [str(e) for e in caught] == ["broker gone"]


async def test_cancelling_the_rest_cancels_the_callback_where_it_waits() -> None:
    """What a rebalance does through Faust's wait_first: the callback sees the cancellation and cleans up."""
    cleaned: list[str] = []
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def callback() -> None:
        try:
            await never
        finally:
            cleaned.append("finally")

    rest = start(callback())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"] and never.cancelled()

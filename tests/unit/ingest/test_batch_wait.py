"""How a webhook request waits for the record batches that carry its records: until all are done, or until its
deadline, without cancelling a batch other requests still wait for."""

from __future__ import annotations

import asyncio

import pytest

from services.ingest.publisher import _all_done


async def test_the_wait_ends_when_every_batch_is_done() -> None:
    loop = asyncio.get_running_loop()
    batches = [loop.create_future() for _ in range(3)]
    waiting = asyncio.create_task(_all_done(batches, loop.time() + 3600))
    for batch in batches:
        assert not waiting.done()
        batch.set_result(None)
        await asyncio.sleep(0)
    await asyncio.wait_for(waiting, timeout=30)  # a bound on the test, not a deadline under test


async def test_at_the_deadline_the_request_gives_up_and_the_shared_batch_goes_on() -> None:
    loop = asyncio.get_running_loop()
    done, pending = loop.create_future(), loop.create_future()
    done.set_result(None)
    waiting = asyncio.create_task(_all_done([done, pending], loop.time() + 0.05))
    await asyncio.wait({waiting}, timeout=30)  # a bound on the test, far beyond the deadline under test
    assert waiting.done(), "the request still waits after its deadline"
    assert isinstance(waiting.exception(), TimeoutError)
    assert not pending.cancelled()
    # nothing of the request is left on the batch: when it is answered later, nothing of ours runs
    assert not pending._callbacks  # type: ignore[attr-defined]
    pending.set_result(None)


async def test_a_request_cancelled_while_waiting_leaves_the_batch_to_the_others() -> None:
    loop = asyncio.get_running_loop()
    shared = loop.create_future()
    mine = asyncio.create_task(_all_done([shared], loop.time() + 3600))
    theirs = asyncio.create_task(_all_done([shared], loop.time() + 3600))
    await asyncio.sleep(0)
    mine.cancel()
    with pytest.raises(asyncio.CancelledError):
        await mine
    assert not shared.cancelled()
    shared.set_result(None)
    await asyncio.wait_for(theirs, timeout=30)

"""Faust's record delivery for the detector's app, without four tasks per record.

Faust (0.15.3, ``Consumer._drain_messages``) hands every fetched record to the app's callback (which puts it on
the agent's channel) through ``Service.wait_first(callback(message), suspend_flow.wait())``: four tasks (the
callback, the flow's event, the stopped and crashed events) and an ``asyncio.wait`` for each record, so that a
rebalance can cut a callback that waits on a full channel. The callback almost never waits. On the embedded
broker this machinery took about a third of a bare agent's time.

The loop here delivers the same records in the same order with the same bookkeeping (read offsets, offset gaps,
commits every ``broker_commit_every`` acks), but runs each callback directly up to its first suspension. Most end
there. One that suspends (its channel is full, or the flow is held) is then awaited through ``wait_first``
exactly as Faust does, from where it stopped, so a rebalance can still cut it.

Pacing: Faust's loop, with its tasks, delivers about one record per turn of the event loop, and the stream takes
one per turn, so the channels' queues stay short. Delivered directly, a hundred records go in per turn; the queue
of the agent's channel fills, Faust stops fetching its partitions (at 80 % full) and fetches again only once the
queue is empty, and the agent then waits out its batch timeout with nothing to do: a third of the time idle in
the benchmark. So every 100 records the loop gives the other tasks a turn and, while any channel holds more than
``ahead`` records, keeps giving turns before it delivers more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Generator
from typing import Any

log = logging.getLogger(__name__)

_FETCHING = "FETCHING"  # Faust's diagnostic flag while the loop fetches (faust.transport.consumer)
_TURN_EVERY = 100


class _Rest:
    """The rest of a coroutine that was run up to its first suspension, as an awaitable.

    Awaiting it hands ``pending`` (what the coroutine yielded: a future it waits on, or None for a bare turn)
    to the task that awaits, and from then on passes every value or exception the task sends in on to the
    coroutine: the coroutine goes on as if the task had run it from the start, and a cancellation reaches it."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self._coro, self._pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation, or what the awaited future raised
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as done:
                    return done.value


def start(coro: Coroutine[Any, Any, Any]) -> _Rest | None:
    """Run ``coro`` up to its first suspension: None if it finished (its exception, if any, raised here), else
    the rest of it, to be awaited."""
    try:
        pending = coro.send(None)
    except StopIteration:
        return None
    return _Rest(coro, pending)


def deliver_without_a_task_per_record(consumer: Any, ahead: int) -> None:
    """Replace ``consumer``'s record loop (Faust's ``_drain_messages``) with the one described above; ``ahead``:
    how many records a channel may hold before the loop waits for its stream (well under Faust's 80 % of
    ``stream_buffer_maxsize``, at least a batch)."""
    if getattr(consumer, "_dealwatch_direct_delivery", False):
        return

    async def drain_messages(fetcher: Any) -> None:
        await _drain(consumer, fetcher, ahead)

    consumer._drain_messages = drain_messages
    consumer._dealwatch_direct_delivery = True


async def _drain(consumer: Any, fetcher: Any, ahead: int) -> None:
    callback = consumer.callback
    topics = consumer.app.topics._topics  # the conductor's channels (Faust's topics), each with its queue
    consumer_stopped = consumer._stopped.is_set
    fetcher_stopped = fetcher._stopped.is_set
    read_offset = consumer._read_offset  # defaultdict: None for a partition not read yet
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    commit_every = consumer._commit_every
    suspend_flow = consumer.suspend_flow
    set_flag, unset_flag = consumer.diag.set_flag, consumer.diag.unset_flag
    since_turn = 0
    try:
        while not (consumer_stopped() or fetcher_stopped()):
            set_flag(_FETCHING)
            records = consumer.getmany(timeout=1.0)
            await asyncio.sleep(0)
            if consumer.should_stop:
                continue
            async for tp, message in records:
                since_turn += 1
                if since_turn > _TURN_EVERY:
                    since_turn = 0
                    await asyncio.sleep(0)
                    while any(topic.queue.qsize() > ahead for topic in tuple(topics)):
                        if consumer_stopped() or fetcher_stopped():
                            return
                        await asyncio.sleep(0)
                offset = message.offset
                last = read_offset[tp]
                if last is not None and offset < last:
                    continue  # read already (Faust drops these too)
                if last and offset - last > 1 and acks_enabled_for(message.topic):
                    await consumer._add_gap(tp, last + 1, offset)  # offsets with no record: count as acked
                if commit_every is not None and consumer._n_acked >= commit_every:
                    consumer._n_acked = 0
                    await consumer.commit()
                rest = start(callback(message))
                if rest is not None:
                    await consumer.wait_first(rest, suspend_flow.wait())
                read_offset[tp] = offset
            unset_flag(_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            log.info("broker stopped the consumer, shutting down")
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            return
        raise
    except Exception:
        log.exception("detector: delivering fetched records failed")
        raise
    finally:
        unset_flag(_FETCHING)

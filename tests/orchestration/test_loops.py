"""One object per event loop: made on first use, the same for the rest of the loop, another for another loop."""

from __future__ import annotations

import asyncio
import gc

from orchestration.loops import PerLoop


class Thing:
    pass


def test_each_loop_has_its_own_made_once_and_dropped_with_the_loop() -> None:
    things = PerLoop(Thing)

    async def twice() -> tuple[Thing | None, Thing, Thing]:
        return things.peek(), things.get(), things.get()

    first_loop, second_loop = asyncio.new_event_loop(), asyncio.new_event_loop()
    before, first, again = first_loop.run_until_complete(twice())
    _, second, _ = second_loop.run_until_complete(twice())
    assert before is None and first is again and second is not first
    assert things.get(first_loop) is first and things.peek(second_loop) is second
    first_loop.close()
    second_loop.close()
    del first_loop, second_loop
    gc.collect()
    assert len(things._made) == 0

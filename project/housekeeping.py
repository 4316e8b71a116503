"""Process housekeeping kept off the request path: the garbage collector's full collections.

CPython's full (generation 2) collection walks every object the collector tracks. Once Django,
DRF, Channels and the apps are loaded, a web process holds about 150,000 of them, and one full
collection took about 190 ms on the benchmark machine: the request that happened to trigger it
waited that long, which was the whole p99 of an otherwise 3 ms call. Nearly all of those objects
live as long as the process (modules, classes, functions, settings, URL patterns), so once the
application is loaded they are moved out of the collector's sight (``gc.freeze``); collections
then walk only what requests create. Cycles among frozen objects are never collected, which costs
nothing here: startup objects are not garbage.

What requests create after that still reaches the oldest generation, and with 200 streams in flight
a full collection walked it all: three per 600 benchmark streams, 50-65 ms each, the one stall of
an event loop that otherwise never waits. So a full collection was made to wait for 100 collections
of the middle generation instead of CPython's 10 (400 now, see below); what full collections cost in
total fell by two thirds (``GC`` timings of ``tests.bench.streaming``'s ``/v1`` run, recorded in
docs/benchmarks.md).

The young generation was collected every 700 allocations (CPython's threshold), about 80 times per
200 benchmark streams, and each collection walked whatever of the streams' objects was alive at that
moment: 88 ms of collections per 200 streams of 24 tokens, about 18 µs per relayed token. Collected
every 10,000 allocations, most of those objects are freed by their reference counts before any
collection sees them: 58 ms per 200 streams (docs/benchmarks.md). It is now collected every 50,000.
What a collection walks is what is alive in the young generation, and what a burst of streams
starts is alive until the streams end: a collection in the middle of a burst walks objects that are
not garbage, and delays every first token still to come. A ``/v1`` stream kept about 200 tracked
objects alive (165 since its headers are let go once sent: ``project/edge/daphne.py``,
``EventStreamResponse.take_wire_headers``), so a burst of 200 simultaneous starts meets no
collection where it met three and a middle one: its p99 time to the first token fell by a tenth,
and by 8-19% at bursts of 100 and 400 (docs/benchmarks.md, "The young generation sized to a
burst"). The price is paid with a thousand streams open, when a collection walks up to 50,000 live
objects: the longest stall was 28-49 ms where it was 8-21 ms.

A middle collection walks everything that survived a young collection since the last one. With
1,000 chat streams open (about 220 tracked objects each), the middle generation was collected at
every 11th young collection (CPython's threshold), and each such collection took 70-95 ms, the
longest stall of the event loop in that run. Collected at every 3rd, each walks less: 42-59 ms at
worst, and the collector's total time stayed the same (docs/benchmarks.md, "The collector's
longest pauses"). A full collection waits for 400 middle ones, about as many allocations apart as
before.

The provider adapters are imported here too (they load only when first used, and with them
aiohttp), and the TLS context they share is built: otherwise the first model call after a start paid
for both, a tenth of a second or more, and what they made stayed outside the frozen set.
"""

from __future__ import annotations

import gc

from django.urls import get_resolver

from orchestration.providers import adapters_preload

# Collections of the middle generation between two full collections (CPython: 10).
FULL_COLLECTION_AFTER = 400
# Young collections between two collections of the middle generation (CPython: 10).
MIDDLE_COLLECTION_AFTER = 2
# Allocations between two collections of the young generation (CPython: 700).
YOUNG_COLLECTION_AFTER = 50_000


def freeze_loaded_objects() -> int:
    """Load what requests would load lazily (the URLconf and its views, the provider adapters and
    their TLS context), collect the startup garbage, then freeze everything alive; returns how many
    objects are frozen."""
    get_resolver().url_patterns  # noqa: B018 - imports every view module now, not on a first request
    adapters_preload()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, MIDDLE_COLLECTION_AFTER, FULL_COLLECTION_AFTER)
    return gc.get_freeze_count()

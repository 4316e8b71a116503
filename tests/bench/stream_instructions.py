"""Instructions per stream: a stream's setup counted by callgrind, the same count every run.

The streaming bench (``tests/bench/streaming.py``) reads the server's CPU time, and on this shared
2-core machine a burst's CPU moves by 10-30% from one run to the next: a cut of 2% of a stream's
setup needs hundreds of paired bursts to show, and a cut of 1% does not show at all. Valgrind's
callgrind counts the instructions the server executes instead, which do not depend on what else
the machine is doing: the same work counts the same to within a few tenths of a percent.

Each server runs under ``valgrind --tool=callgrind`` with counting off while it starts and takes
two warm-up bursts; counting is then on for ``--bursts`` bursts of ``--streams`` one-token streams
(the streaming bench's setup shape: admission, the upstream call, its one token, the settle and
the request log, all of a stream but the relay of further tokens), and the total over every thread
is divided by the streams. Then, unless ``--setup-only``, one burst of streams of 24 tokens at 5 a
second: its count less the one-token streams', over the 23 further tokens, is what relaying one more
token costs (at 5 a second even a server slowed by callgrind reads its tokens one at a time).

**To the first token** counts what a burst's time to first token is made of: a burst of streams
the upstream holds after their first token, counted from its start until the load client has every
stream's first token; then the upstream lets the streams end, uncounted. It leaves out what a stream
does after its first token (the relay of the rest, the settle, the request log), which the one-token
count holds: a burst's p99 time to the first token is this count's CPU, queued 200 deep. Under
callgrind a burst lasts seconds, so what Switchyard does by the clock meanwhile (the chat's sweeper
each second, a waiting relay's check on its producer every 5 s) is counted in too, far more of it
than in a real burst. The held streams wait longer than Switchyard lets a stream idle and a chat
reply's producer go without its heartbeat, so both limits are raised for every count
(``HELD_STREAMS_ENV``). ``--first-token-only`` counts this alone.

A server under callgrind runs 30 to 50 times slower, so its bursts queue far more than on the real
core, what runs by the clock (a cache kept for 100 ms, a batch flushed every 5 ms) happens more
often per stream, and what a real burst batches (admissions, settlements) reaches Redis one call
at a time, as a lone stream's does: compare counts with counts, not with the streaming bench's
milliseconds. Each Switchyard server is counted with an API key of its own, and each section
only once the request log holds a row for every stream before it (``_RowsWritten``): the second
server counted on one shared key counted about 8% more than the first, and an earlier burst's batch
of rows, landing in a count or not, moved it by up to a quarter. So kept, two counts of the same
code agree within about 1%. What runs by the clock still lands in a count by chance: the registry's
snapshot, read again every 5 s, fell into the first-token section of a run of every kind and not
into a first-token count alone, so compare first-token counts made with ``--first-token-only``.
Servers, each on the same upstream as in the streaming bench:

- **daphne-serve-floor**: the raw ASGI relay on daphne as ``serve`` runs it (the ``/v1`` shape);
- **daphne-chat-durable-floor**: the chat's shape on it, with the durable stream in Redis;
- **v1**: Switchyard's ``/v1/chat/completions`` with ``stream: true``;
- **chat**: Switchyard's chat, ``POST`` then SSE.

``--before <checkout>`` also counts ``v1`` and ``chat`` as served by another checkout (run with this
interpreter), and gives each count's change.

    python -m tests.bench stream_instructions
    python -m tests.bench.stream_instructions --before /tmp/before --only v1
    python -m tests.bench.stream_instructions --before /tmp/before --only v1 --first-token-only
"""

from __future__ import annotations

import argparse
import glob
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench import streaming

SERVERS = ("daphne-serve-floor", "daphne-chat-durable-floor", "v1", "chat")


def callgrind_prefix(out_file: str) -> list[str]:
    """The command prefix that runs a server under callgrind, counting nothing until told to."""
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}"]


def _control(pid: int, *arguments: str) -> None:
    subprocess.run(["callgrind_control", *arguments, str(pid)], check=True, capture_output=True, timeout=120)


def counted_total(out_file: str) -> int:
    """The instructions of every dump callgrind wrote for ``out_file`` (one file per dump)."""
    total = 0
    for path in glob.glob(out_file + "*"):
        with open(path, errors="replace") as dump:
            for line in dump:
                if line.startswith("totals:"):
                    total += int(line.split()[1])
    return total


def _counted_bursts(target: streaming.Target, model: str, *, streams: int, bursts: int, side_pids: list[int]) -> None:
    for _ in range(bursts):
        run = streaming.measure(target, model, streams, side_pids=side_pids)
        if run.completed != streams or run.tokens != streams * _tokens_of(model):
            raise RuntimeError(f"{target.name}: {run.completed}/{streams} streams completed: {run.errors}")


def _tokens_of(model: str) -> int:
    return int(model.split("-")[1].split("x")[0])  # stream-<tokens>x<every ms>-<first ms>


KINDS = ("setup", "per token", "first token")


def count(
    target: streaming.Target,
    out_file: str,
    *,
    streams: int,
    bursts: int,
    side_pids: list[int],
    kinds: tuple[str, ...],
    upstream_url: str,
) -> dict[str, float]:
    """Instructions, by kind (those in ``kinds``), after two uncounted warm-up bursts:

    - ``setup``: per stream over ``bursts`` bursts of ``streams`` one-token streams;
    - ``per token``: each further token: one burst of 24-token streams at 5 tokens a second (slow
      enough that a server slowed by callgrind still reads its tokens one by one) less the one-token
      streams (so ``setup`` is counted too), over the 23 further tokens;
    - ``first token``: per stream, to its first token (``to_first_token``).

    The server is stopped afterwards."""
    process = target.process
    figures: dict[str, float] = {}
    logged = _RowsWritten(target)
    try:
        for _ in range(2):
            streaming.measure(target, streaming.SETUP_MODEL, streams, side_pids=side_pids)
        logged.wait(2 * streams)
        if "setup" in kinds or "per token" in kinds:

            def one_token_bursts() -> None:
                _counted_bursts(target, streaming.SETUP_MODEL, streams=streams, bursts=bursts, side_pids=side_pids)
                logged.wait(bursts * streams)

            figures["setup"] = _counted(out_file, process.pid, one_token_bursts) / (streams * bursts)
        if "per token" in kinds:

            def longer_streams() -> None:
                _counted_bursts(target, streaming.SLOW_MODEL, streams=streams, bursts=1, side_pids=side_pids)
                logged.wait(streams)

            whole = _counted(out_file, process.pid, longer_streams)
            further = _tokens_of(streaming.SLOW_MODEL) - 1
            figures["per token"] = (whole / streams - figures["setup"]) / further
        if "first token" in kinds:
            figures["first token"] = to_first_token(
                target, out_file, streams=streams, side_pids=side_pids, upstream_url=upstream_url
            )
    finally:
        process.stop()
    return figures


class _RowsWritten:
    """Waits for Switchyard's request log to hold a row for each stream measured so far. It writes
    them from a batch every half second (orchestration/requestlog.py): a batch left from an earlier
    burst, landing in a count or not, moved the count to the first token by a quarter. A counted
    burst's own rows are counted with it: writing them is part of a stream."""

    def __init__(self, target: streaming.Target) -> None:
        self.logs = target.name.removeprefix("before ") in ("v1", "chat")
        self.rows = _request_log_rows() if self.logs else 0

    def wait(self, streams: int, *, wait_s: float = 120.0) -> None:
        if not self.logs:
            return
        self.rows += streams
        ends = time.monotonic() + wait_s
        while _request_log_rows() < self.rows:
            if time.monotonic() > ends:
                raise RuntimeError(f"the request log did not reach {self.rows} rows in {wait_s:g} s")
            time.sleep(0.05)


def _request_log_rows() -> int:
    from orchestration.models import RequestLog

    return RequestLog.objects.count()


# Held streams wait for the whole of a burst slowed by callgrind: longer than the stream idle limit,
# and longer than a chat reply's producer may go without its heartbeat.
HELD_STREAMS_ENV = {"SWITCHYARD_STREAM_IDLE_S": "600", "SWITCHYARD_CHAT_PRODUCER_LOST_S": "600"}
FIRST_TOKENS_WAIT_S = 600.0


def _counted(out_file: str, pid: int, work: Callable[[], None]) -> int:
    """The instructions counted while ``work`` runs (callgrind's dump zeroes the counts)."""
    before = counted_total(out_file)
    _control(pid, "--instr=on")
    try:
        work()
    finally:
        _control(pid, "--instr=off")
        _control(pid, "--dump")
    return counted_total(out_file) - before


def to_first_token(
    target: streaming.Target, out_file: str, *, streams: int, side_pids: list[int], upstream_url: str
) -> float:
    """Instructions per stream from a burst's start until its load client has every stream's first
    token (the upstream holds each stream after it, ``streaming.FIRST_TOKEN_MODEL``); then the
    upstream lets them end, uncounted."""
    held = streaming.HeldBurst(target, streams, upstream_url, side_pids=side_pids, wait_s=FIRST_TOKENS_WAIT_S)
    try:
        total = _counted(out_file, target.process.pid, held.start)
    finally:
        run = held.release()
    if run.completed != streams or run.tokens != 2 * streams:
        raise RuntimeError(f"{target.name}: {run.completed}/{streams} streams completed: {run.errors}")
    return total / streams


def instructions(
    *,
    streams: int = 50,
    bursts: int = 3,
    only: frozenset[str] = frozenset(),
    before: Path | None = None,
    kinds: tuple[str, ...] = KINDS,
) -> dict[str, str]:
    """Instructions per stream for each server (``only``: those named), of each kind in ``kinds``
    (see ``count``), and with ``before`` for ``v1`` and chat served by that checkout too."""
    upstream = streaming.start_upstream()
    work = Path(tempfile.mkdtemp(prefix="switchyard-callgrind-"))
    starters: dict[str, Callable[[list[str]], streaming.Target]] = {
        "daphne-serve-floor": lambda prefix: streaming.Target(
            "daphne-serve-floor",
            streaming.start_server_floor("daphne", upstream.url, serve_patches=True, prefix=prefix),
            "v1",
        ),
        "daphne-chat-durable-floor": lambda prefix: streaming._chat_floor_target(
            streaming.start_server_floor("daphne", upstream.url, serve_patches=True, prefix=prefix), durable=True
        ),
    }
    checkouts = {"": streaming.ROOT} if before is None else {"before ": before, "": streaming.ROOT}
    for label, checkout in checkouts.items():

        def switchyard(prefix: list[str], checkout: Path = checkout) -> Any:
            return streaming.start_switchyard("daphne", checkout, prefix=prefix, env=HELD_STREAMS_ENV)

        starters[f"{label}v1"] = lambda prefix, start=switchyard, label=label: streaming.Target(
            f"{label}v1", start(prefix), "v1", _bearer(streaming.registry_and_key(upstream.url)[0])
        )
        starters[f"{label}chat"] = lambda prefix, start=switchyard, label=label: _named(
            streaming._chat_target(start(prefix), *streaming.registry_and_key(upstream.url)), f"{label}chat"
        )
    counts: dict[str, dict[str, float]] = {kind: {} for kind in KINDS}
    try:
        for name, start in starters.items():
            if only and name.removeprefix("before ") not in only:
                continue
            out_file = str(work / f"{name.replace(' ', '-')}.callgrind")
            target = start(callgrind_prefix(out_file))
            figures_of = count(
                target,
                out_file,
                streams=streams,
                bursts=bursts,
                side_pids=[upstream.pid],
                kinds=kinds,
                upstream_url=upstream.url,
            )
            for kind, value in figures_of.items():
                counts[kind][name] = value
    finally:
        upstream.stop()
        shutil.rmtree(work, ignore_errors=True)
    counted = []
    if counts["setup"]:
        counted.append(f"{bursts} bursts of {streams} one-token streams per server")
    if counts["per token"]:
        counted.append(f"one of {streams} streams of {_tokens_of(streaming.SLOW_MODEL)} tokens at 5 a second")
    if counts["first token"]:
        counted.append(f"one of {streams} streams to their first token")
    figures = {"counted": ", then ".join(counted) + ", under callgrind"}
    units = {
        "setup": ("M instructions per stream", 1e6),
        "per token": ("k instructions per further token", 1e3),
        "first token": ("M instructions per stream to its first token", 1e6),
    }
    for kind, of in counts.items():
        unit, scale = units[kind]
        for name, value in of.items():
            figures[f"{name} {kind}"] = _compared(name, value, of, unit, scale)
    return figures


_FLOORS = {"v1": "daphne-serve-floor", "chat": "daphne-chat-durable-floor"}


def _compared(name: str, value: float, of: dict[str, float], unit: str, scale: float) -> str:
    """``value`` with its ratio to its server's floor and its change against ``before``'s."""
    text = f"{value / scale:.3f} {unit}"
    floor = of.get(_FLOORS.get(name.removeprefix("before "), ""))
    if floor:
        text += f" ({value / floor:.2f}x its floor; {(value - floor) / scale:.3f} over it)"
    if not name.startswith("before ") and (earlier := of.get(f"before {name}")):
        text += f"; {value / earlier - 1:+.2%} against before"
    return text


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _named(target: streaming.Target, name: str) -> streaming.Target:
    target.name = name
    return target


def run() -> dict[str, str]:
    """Entry point of ``python -m tests.bench``."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        return {"skipped": "needs valgrind (callgrind)"}
    return instructions()


def _kinds(options: argparse.Namespace) -> tuple[str, ...]:
    if options.first_token_only:
        return ("first token",)
    if options.setup_only:
        return ("setup",)
    return KINDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=50, help="one-token streams per burst")
    parser.add_argument("--bursts", type=int, default=3, help="counted bursts per server")
    parser.add_argument("--only", default="", help=f"comma-separated servers to count ({', '.join(SERVERS)})")
    parser.add_argument("--before", type=Path, help="another checkout whose v1 and chat are counted too")
    parser.add_argument("--setup-only", action="store_true", help="count one-token streams only, not further tokens")
    parser.add_argument(
        "--first-token-only", action="store_true", help="count streams to their first token only (to_first_token)"
    )
    options = parser.parse_args(argv)
    from tests.bench.environment import bench_environment

    bench_environment()
    only = frozenset(name for name in options.only.split(",") if name)
    unknown = only - set(SERVERS)
    if unknown:
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    before = options.before.resolve() if options.before is not None else None
    figures = instructions(
        streams=options.streams, bursts=options.bursts, only=only, before=before, kinds=_kinds(options)
    )
    for name, value in figures.items():
        print(f"{name}: {value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

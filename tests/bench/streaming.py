"""Streaming at the floor: what relaying a token costs the server, measured with the server alone on a core.

The machine has two cores. The server under test runs pinned to core 0 (``taskset -c 0``); the
load client, the upstream, Redis and this script run on core 1. Every server relays the same
upstream (``tests/bench/streamkit/upstream.py``: first token after 50 ms, then one every 50 ms,
24 tokens) to the same load (``streamkit/load.py``: all streams started at once, raw asyncio):

- **floor**: a bare aiohttp server relaying the upstream's bytes (``streamkit/relay.py``);
- **daphne-floor**: the same bare relay as a raw ASGI app (``streamkit/asgirelay.py``) served by
  daphne started exactly as ``serve`` starts it: what daphne as it ships costs;
- **daphne-serve-floor**: the same, with what ``project.asgi`` applies to the daphne that serves
  Switchyard (``project.edge.daphne.daphne_harden``: among others an eager write path): daphne as
  ``serve`` runs it. Switchyard on daphne minus this is Switchyard's own cost;
- **v1**: Switchyard's ``/v1/chat/completions`` with ``stream: true``, as ``serve`` runs it
  (daphne, DEBUG off, one web process), with a key that has limits and a budget, the request log on;
- **chat**: Switchyard's chat, ``POST`` a message then read its SSE stream;
- **daphne-chat-floor**: the chat's shape on the bare ASGI relay under daphne as ``serve`` runs it (a ``POST`` that
  starts the upstream call detached, then a ``GET`` that relays its bytes): what two requests and a
  hand-over cost on daphne before any of Switchyard's work;
- **daphne-chat-durable-floor**: the same shape with the chat's durable stream (docs/architecture.md):
  the detached call appends the upstream's bytes to a Redis Stream, batched as chat batches them, and
  the ``GET`` relays each batch once it landed. What the chat's design costs at redis-py's floor,
  with none of Switchyard's work;
- **litellm** (``--litellm``): LiteLLM's proxy, one worker, installed on first use into
  ``/tmp/litellm-venv``;
- **v1-uvicorn** (``--uvicorn``, when uvicorn is installed): the same ASGI app under uvicorn, next to
  **uvicorn-floor**, the raw ASGI relay under uvicorn.

Each server is first warmed with one run at the measured concurrency (its pools grow to it once).
Then ``--repeat`` rounds (3): in each, every server gets its bursts in turn, the order rotating, so
that a stretch of slower machine (a shared host's neighbours) falls on every server of that round
alike. A server's figures are its run of median CPU; a ratio to the floor is the median of the
rounds' ratios. Figures per server, all from this one run:
- CPU per relayed token: the server's whole CPU time over the 200 streams (setup included)
  divided by the tokens delivered, and its ratio to the floor's;
- CPU per stream setup: the server's CPU over 200 one-token streams, divided by 200;
- TTFT added p50/p99: time to first token at the client minus the upstream's 50 ms;
- completed streams, and the server's peak RSS;
- the load core's use (load client + upstream + Redis CPU over the wall time): under 100% means
  the load side was not the limit.
Then Switchyard's own share: v1's (and chat's) CPU per token and per setup minus its server's floor's
as served (chat's: the chat floor's), the server's own share (its floor as served minus the bare
relay), and what ``serve``'s patches save daphne (daphne-floor minus daphne-serve-floor). Then
1,000 streams at 5 tokens/s for floor, v1, the durable chat floor and chat (TTFT p99, completion,
peak RSS), twice: all started at once (a burst: TTFT is then the queue of 1,000 setups on one
core), and arriving evenly over ``--many-ramp-s`` seconds (5), about as long as one lasts, so that
about as many are open at once at the peak (the report gives that peak) without one burst of
setups.

``--lone`` measures instead what a stream costs when it comes alone: 100 one-token streams at once,
then the same arriving one every 20 ms, for the floors, ``/v1`` and chat (``--history N``: the
chat's conversations already hold N turns, read by every post). ``--long N`` measures what a
further token costs once a stream's setup is spread thin: 200 streams of N tokens at once, the
floors, ``/v1`` and chat in turn, ``--repeat`` rounds.

    python -m tests.bench streaming
    python -m tests.bench.streaming --streams 200 --litellm --uvicorn
    python -m tests.bench.streaming --lone [--only chat --history 100]
    python -m tests.bench.streaming --long 100
    python -m tests.bench.streaming --objects [--only chat]

``--gc`` adds each run's garbage collections in the server (their total time, how many of each
generation, the longest) to its figures: every process the benchmark starts then logs its
collections (``streamkit/gcwatch``). ``--objects`` counts instead what each open stream keeps alive
for the collector to walk: ``--streams`` streams held after their first token, the server's live
tracked objects less its count before the burst, per stream and by type, for the floors, ``/v1``
and chat.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from tests.bench.environment import RssWatch, server_error

SERVER_CORE, LOAD_CORE = 0, 1
FIRST_MS, EVERY_MS, TOKENS = 50, 50, 24
MODEL = f"stream-{TOKENS}x{EVERY_MS}-{FIRST_MS}"
SETUP_MODEL = f"stream-1x{EVERY_MS}-{FIRST_MS}"
SLOW_MODEL = f"stream-{TOKENS}x200-{FIRST_MS}"  # 5 tokens/s
# Held after its first token until the upstream is told to go on (streamkit/upstream.py, ``POST /release``).
FIRST_TOKEN_MODEL = f"stream-2x0-{FIRST_MS}"
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


# --- processes -------------------------------------------------------------------------------


def _pinned(core: int | None) -> list[str]:
    return [] if core is None else ["taskset", "-c", str(core)]


def pin_here_and_children(core: int) -> None:
    """This process, its threads and every process it started so far (Redis) onto ``core``."""
    import psutil

    for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        for thread in process.threads():
            os.sched_setaffinity(thread.id, {core})


def _redis_pid() -> int | None:
    import psutil

    for child in psutil.Process().children(recursive=True):
        if "valkey" in child.name() or "redis" in child.name():
            return int(child.pid)
    return None


def _start(
    name: str,
    argv: list[str],
    *,
    ready_url: str,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    cwd: Path = ROOT,
) -> Any:
    from tests.support import ManagedProcess, child_env, log_path, wait_http

    environment = {key: value for key, value in child_env(**(env or {})).items() if key not in unset}
    process = ManagedProcess(argv, environment, log_path(f"bench-{name}"), cwd=cwd).start()
    wait_http(ready_url, process=process.process, timeout=180)
    return process


def start_upstream() -> Any:
    from tests.support import free_port

    port = free_port()
    argv = [*_pinned(LOAD_CORE), sys.executable, "-m", "tests.bench.streamkit.upstream", "--port", str(port)]
    process = _start("upstream", argv, ready_url=f"http://127.0.0.1:{port}/ready")
    process.url = f"http://127.0.0.1:{port}"
    return process


def start_floor(upstream_url: str) -> Any:
    from tests.support import free_port

    port = free_port()
    argv = [*_pinned(SERVER_CORE), sys.executable, "-m", "tests.bench.streamkit.relay"]
    argv += ["--port", str(port), "--upstream", upstream_url]
    process = _start("floor", argv, ready_url=f"http://127.0.0.1:{port}/ready")
    process.url = f"http://127.0.0.1:{port}"
    return process


def start_server_floor(
    server: str,
    upstream_url: str,
    core: int | None = SERVER_CORE,
    *,
    serve_patches: bool = False,
    prefix: list[str] | None = None,
) -> Any:
    """The raw ASGI relay (``streamkit/asgirelay.py``) under ``server``, started as Switchyard is
    (on ``core``; None: unpinned); ``serve_patches``: with what ``project.asgi`` applies to daphne;
    ``prefix``: the command runs under it instead of pinned (a profiler)."""
    import secrets

    from project.stack import daphne_command
    from tests.support import free_port

    port = free_port()
    app = "tests.bench.streamkit.asgirelay:application"
    if server == "daphne":
        command = [*daphne_command("127.0.0.1", port)[:-1], app]
    else:
        command = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--no-access-log", "--backlog", "2048"]
    env = {"SWITCHYARD_BENCH_UPSTREAM": upstream_url}
    if serve_patches:
        # The patches read Switchyard's settings (the body limit, the send stall) when they act.
        env |= {
            "SWITCHYARD_BENCH_SERVE_PATCHES": "1",
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_hex(16),
        }
    name = f"{server}-serve-floor" if serve_patches else f"{server}-floor"
    wrapper = _pinned(core) if prefix is None else prefix
    process = _start(name, [*wrapper, *command], ready_url=f"http://127.0.0.1:{port}/ready", env=env)
    process.url = f"http://127.0.0.1:{port}"
    return process


def start_switchyard(
    server: str, checkout: Path = ROOT, *, prefix: list[str] | None = None, env: dict[str, str] | None = None
) -> Any:
    """Switchyard as ``serve`` runs it, serving the code of ``checkout`` (this one by default);
    ``prefix``: the command runs under it instead of pinned to the server core (a profiler);
    ``env``: more of its environment."""
    from project.stack import daphne_command
    from tests.support import database_url_for_current_connection, free_port

    port = free_port()
    if server == "daphne":
        command = list(daphne_command("127.0.0.1", port))
    else:
        command = [sys.executable, "-m", "uvicorn", "project.asgi:application", "--port", str(port)]
        command += ["--no-access-log", "--backlog", "2048"]
    env = {"DATABASE_URL": database_url_for_current_connection(), "DEBUG": "0", **(env or {})}
    ready_url = f"http://127.0.0.1:{port}/healthz"
    wrapper = _pinned(SERVER_CORE) if prefix is None else prefix
    process = _start(server, [*wrapper, *command], ready_url=ready_url, env=env, cwd=checkout)
    process.url = f"http://127.0.0.1:{port}"
    return process


def start_litellm(upstream_url: str, master_key: str) -> Any:
    from tests.bench.gateway_throughput import litellm_install
    from tests.support import free_port

    litellm = litellm_install()
    model_list = [
        {
            "model_name": name,
            "litellm_params": {"model": f"openai/{name}", "api_base": f"{upstream_url}/v1", "api_key": "x"},
        }
        for name in (MODEL, SETUP_MODEL, SLOW_MODEL)
    ]
    config = Path(os.environ.get("TMPDIR", "/tmp")) / f"litellm-streaming-{os.getpid()}.yaml"
    config.write_text(json.dumps({"model_list": model_list, "general_settings": {"master_key": master_key}}))
    port = free_port()
    argv = [*_pinned(SERVER_CORE), str(litellm), "--config", str(config), "--port", str(port), "--num_workers", "1"]
    # Without a database it runs on its master key alone; it refuses a DATABASE_URL that is not PostgreSQL.
    process = _start("litellm", argv, ready_url=f"http://127.0.0.1:{port}/health/liveliness", unset=("DATABASE_URL",))
    process.url = f"http://127.0.0.1:{port}"
    return process


# --- the registry ------------------------------------------------------------------------------


def registry_and_key(upstream_url: str, models: tuple[str, ...] = ()) -> tuple[str, Any]:
    """The stream shapes (and ``models``, more of them) as models of one OpenAI-compatible
    provider, and a key with limits."""
    from django.contrib.auth import get_user_model

    from orchestration.access.keys import api_key_create
    from orchestration.models import LanguageModel, Provider

    provider, _ = Provider.objects.update_or_create(
        name="bench-upstream", defaults={"kind": Provider.Kind.OPENAI_COMPATIBLE, "base_url": upstream_url + "/v1"}
    )
    for name in (MODEL, SETUP_MODEL, SLOW_MODEL, FIRST_TOKEN_MODEL, *models):
        fields = {"provider": provider, "upstream": name, "cache_exact_enabled": False, "cache_semantic": False}
        LanguageModel.objects.update_or_create(
            name=name, defaults={**fields, "input_per_mtok": 1, "output_per_mtok": 2}
        )
    user, _ = get_user_model().objects.get_or_create(username="bench-streaming")
    # Limits high enough never to refuse, so that every stream pays for checking them.
    limits = {"rpm": 10_000_000, "tpm": 1_000_000_000, "monthly_budget_usd": Decimal("1000000")}
    return api_key_create(user=user, name="bench", **limits)[1], user


def conversations(user: Any, model: str, count: int) -> list[int]:
    from chat.models import Conversation

    made = Conversation.objects.bulk_create(Conversation(owner=user, model=model) for _ in range(count))
    if made and made[0].pk is None:  # databases that return no ids from a bulk insert
        return list(Conversation.objects.filter(owner=user).order_by("-id").values_list("id", flat=True)[:count])
    return [int(conversation.pk) for conversation in made]


# --- one measured run ----------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    process: Any
    kind: str  # "v1" or "chat"
    headers: dict[str, str] = field(default_factory=dict)
    spec_for: Callable[[str, int], dict[str, Any]] | None = None

    @property
    def port(self) -> int:
        return int(self.process.url.rsplit(":", 1)[1])

    def spec(self, model: str, streams: int) -> dict[str, Any]:
        if self.spec_for is not None:
            return self.spec_for(model, streams)
        body = {"model": model, "messages": [{"role": "user", "content": "Stream me a reply."}], "stream": True}
        return {"kind": "v1", "port": self.port, "streams": streams, "headers": self.headers, "body": body}


@dataclass
class Run:
    streams: int
    completed: int
    tokens: int
    cpu_s: float
    wall_s: float
    ttft_added_ms: list[float]
    peak_rss_mb: float
    load_core: float
    errors: list[str]
    peak_open: int = 0
    # chat: when each POST's answer, then its stream's response head, had arrived (ms from opening)
    posted_ms: list[float] = field(default_factory=list)
    head_ms: list[float] = field(default_factory=list)
    # with --gc: the server's garbage collections during the run, (generation, milliseconds) each
    gc_pauses: list[tuple[int, float]] = field(default_factory=list)

    def gc_summary(self) -> str:
        if not self.gc_pauses:
            return ""
        counts = [sum(1 for generation, _ in self.gc_pauses if generation == g) for g in range(3)]
        total = sum(ms for _, ms in self.gc_pauses)
        worst = max(ms for _, ms in self.gc_pauses)
        made = "/".join(map(str, counts))
        return f"GC {total:.0f} ms in {made} collections (young/middle/full), longest {worst:.1f} ms"

    def per_token_us(self) -> float:
        return self.cpu_s / max(1, self.tokens) * 1e6

    def ttft(self, quantile: float) -> float:
        return _quantile(self.ttft_added_ms, quantile)


def _quantile(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def _cpu_s(pid: int | None) -> float:
    """The CPU time of process ``pid``, all its threads, to the nanosecond: its scheduler clock
    (Linux's CPU-time clock of another process, ``clock_getcpuclockid``). ``cpu_times`` counts
    10 ms ticks, a fifth of what 200 stream setups take; it is the fallback."""
    import psutil

    if pid is None:
        return 0.0
    try:
        # The clock id Linux gives a process's CPU-time clock: (~pid << 3) | CPUCLOCK_SCHED (2).
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)


def measure(
    target: Target,
    model: str,
    streams: int,
    *,
    side_pids: list[int],
    ramp_s: float = 0.0,
    first_tokens_path: str | None = None,
) -> Run:
    """Start ``streams`` streams at once (or spread evenly over ``ramp_s``) against ``target``; the
    server's CPU over exactly that time. ``first_tokens_path``: made once every stream has its first
    token (``streamkit/load.py``)."""
    spec = target.spec(model, streams) | {"ramp_s": ramp_s, "first_tokens_path": first_tokens_path}
    watch = RssWatch(target.process.pid)
    sampler = threading.Thread(target=watch.run, daemon=True)
    sampler.start()
    collections_before = len(_gc_pauses(target.process.pid))
    server_before = _cpu_s(target.process.pid)
    side_before = sum(_cpu_s(pid) for pid in side_pids)
    argv = [*_pinned(LOAD_CORE), sys.executable, "-m", "tests.bench.streamkit.load", json.dumps(spec)]
    output = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True, timeout=600)
    server_cpu = _cpu_s(target.process.pid) - server_before
    side_cpu = sum(_cpu_s(pid) for pid in side_pids) - side_before
    watch.stop.set()
    sampler.join()
    report = json.loads(output.stdout)
    results = report["streams"]
    done = [result for result in results if result["ok"]]
    errors = sorted({result["error"] or f"status {result['status']}" for result in results if not result["ok"]})
    return Run(
        streams=streams,
        completed=len(done),
        tokens=sum(result["tokens"] for result in results),
        cpu_s=server_cpu,
        wall_s=report["wall_s"],
        ttft_added_ms=[result["ttft_ms"] - FIRST_MS for result in results if result["ttft_ms"] is not None],
        peak_rss_mb=watch.peak / 2**20,
        load_core=(report["cpu_s"] + side_cpu) / max(report["wall_s"], 1e-9),
        errors=errors[:3],
        peak_open=_peak_open(results),
        posted_ms=[result["posted_ms"] for result in results if result.get("posted_ms") is not None],
        head_ms=[result["head_ms"] for result in results if result.get("head_ms") is not None],
        gc_pauses=_gc_pauses(target.process.pid)[collections_before:],
    )


GC_FILE_VARIABLE = "SWITCHYARD_BENCH_GC_FILE"


def watch_garbage_collections() -> None:
    """Make every process started from now on log its garbage collections (``streamkit/gcwatch``)."""
    import atexit
    import tempfile

    watch = Path(__file__).parent / "streamkit" / "gcwatch"
    logs = tempfile.mkdtemp(prefix="switchyard-gc-")
    atexit.register(shutil.rmtree, logs, ignore_errors=True)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(watch), os.environ.get("PYTHONPATH")]))
    os.environ[GC_FILE_VARIABLE] = str(Path(logs) / "gc")


def _gc_pauses(pid: int) -> list[tuple[int, float]]:
    base = os.environ.get(GC_FILE_VARIABLE)
    if not base:
        return []
    try:
        lines = Path(f"{base}.{pid}").read_text().splitlines()
    except FileNotFoundError:
        return []
    pauses = []
    for line in lines:
        generation, _, ms = line.partition(" ")
        if ms:
            pauses.append((int(generation), float(ms)))
    return pauses


def _peak_open(results: list[dict[str, Any]]) -> int:
    """The most streams open at one moment (each from its connection to its last byte)."""
    edges = sorted(
        [(r["opened_s"], 1) for r in results] + [(r["opened_s"] + r["total_ms"] / 1000, -1) for r in results]
    )
    peak = open_now = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    return peak


# --- the benchmark -------------------------------------------------------------------------------


@dataclass
class Lineup:
    targets: list[Target]
    side_pids: list[int]
    stop: list[Any]
    upstream_url: str


def _chat_target(process: Any, secret: str, user: Any) -> Target:
    headers = {"Authorization": f"Bearer {secret}"}
    target = Target("chat", process, "chat", headers)

    def spec_for(model: str, streams: int) -> dict[str, Any]:
        ids = conversations(user, model, streams)
        return {
            "kind": "chat",
            "port": target.port,
            "streams": streams,
            "headers": headers,
            "conversations": ids,
            "content": "Stream me a reply.",
        }

    target.spec_for = spec_for
    return target


def _chat_floor_target(process: Any, *, durable: bool = False) -> Target:
    """The chat's shape on the bare ASGI relay (``streamkit/asgirelay.py``): its conversations
    name the upstream's model, since it has no database to find it in. ``durable``: with the
    reply's bytes appended to a Redis Stream before they are relayed."""
    target = Target("daphne-chat-durable-floor" if durable else "daphne-chat-floor", process, "chat")

    def spec_for(model: str, streams: int) -> dict[str, Any]:
        ids = [f"{model}~{index}{'~durable' if durable else ''}" for index in range(streams)]
        return {"kind": "chat", "port": target.port, "streams": streams, "conversations": ids, "content": "Hi."}

    target.spec_for = spec_for
    return target


def lineup(*, litellm: bool, uvicorn: bool, models: tuple[str, ...] = ()) -> Lineup:
    import secrets

    upstream = start_upstream()
    stop: list[Any] = [upstream]
    secret, user = registry_and_key(upstream.url, models)
    floor = start_floor(upstream.url)
    daphne_floor = start_server_floor("daphne", upstream.url)
    serve_floor = start_server_floor("daphne", upstream.url, serve_patches=True)
    switchyard = start_switchyard("daphne")
    stop += [floor, daphne_floor, serve_floor, switchyard]
    headers = {"Authorization": f"Bearer {secret}"}
    targets = [
        Target("floor", floor, "v1"),
        Target("daphne-floor", daphne_floor, "v1"),
        Target("daphne-serve-floor", serve_floor, "v1"),
        Target("v1", switchyard, "v1", headers),
        _chat_floor_target(serve_floor),
        _chat_floor_target(serve_floor, durable=True),
        _chat_target(switchyard, secret, user),
    ]
    if uvicorn and shutil.which("uvicorn", path=str(Path(sys.executable).parent)):
        uvicorn_floor = start_server_floor("uvicorn", upstream.url)
        other = start_switchyard("uvicorn")
        stop += [uvicorn_floor, other]
        targets += [Target("uvicorn-floor", uvicorn_floor, "v1"), Target("v1-uvicorn", other, "v1", headers)]
    if litellm:
        master_key = f"sk-{secrets.token_hex(16)}"
        proxy = start_litellm(upstream.url, master_key)
        stop.append(proxy)
        targets.append(Target("litellm", proxy, "v1", {"Authorization": f"Bearer {master_key}"}))
    side = [upstream.pid, *([pid] if (pid := _redis_pid()) else [])]
    return Lineup(targets, side, stop, upstream.url)


def _line(run: Run, ratio: float | None = None) -> str:
    text = (
        f"{run.per_token_us():.0f} µs/token{f' ({ratio:.1f}x floor)' if ratio is not None else ''}; "
        f"TTFT added p50 {run.ttft(0.5):.0f} ms, p99 {run.ttft(0.99):.0f} ms; "
        f"{run.completed}/{run.streams} complete; peak RSS {run.peak_rss_mb:.0f} MB; load core {run.load_core:.0%}"
    )
    if run.posted_ms:
        # Where a chat stream's first-token time goes: its POST's answer, then its stream's head.
        text += (
            f"; POST answered p50 {_quantile(run.posted_ms, 0.5):.0f} / p99 {_quantile(run.posted_ms, 0.99):.0f} ms"
            f", stream head p50 {_quantile(run.head_ms, 0.5):.0f} / p99 {_quantile(run.head_ms, 0.99):.0f} ms"
        )
    if run.gc_pauses:
        text += f"; {run.gc_summary()}"
    if run.errors:
        text += f"; errors: {run.errors}"
    return text


def _median(runs: list[Run]) -> Run:
    """The run of median CPU (the figures of one run stay together)."""
    return sorted(runs, key=lambda run: run.cpu_s)[len(runs) // 2]


def _median_value(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _in_rounds(
    targets: list[Target], streams: int, repeat: int, side_pids: list[int]
) -> dict[str, tuple[list[Run], list[Run]]]:
    """Every target's runs (24 tokens, then one token), ``repeat`` rounds of one burst each in
    turn, the order rotating each round: a machine that is slower for a while (a shared host's
    neighbours) slows every target of that round alike, and a ratio of one round compares like
    with like."""
    runs: dict[str, tuple[list[Run], list[Run]]] = {target.name: ([], []) for target in targets}
    for round_ in range(repeat):
        shift = round_ % len(targets)
        for target in targets[shift:] + targets[:shift]:
            runs[target.name][0].append(measure(target, MODEL, streams, side_pids=side_pids))
            runs[target.name][1].append(measure(target, SETUP_MODEL, streams, side_pids=side_pids))
    return runs


def benchmark(
    *,
    streams: int = 200,
    many: int = 1000,
    many_ramp_s: float = 5.0,
    litellm: bool = False,
    uvicorn: bool = False,
    repeat: int = 3,
    only: frozenset[str] = frozenset(),
) -> dict[str, str]:
    pin_here_and_children(LOAD_CORE)
    setup = lineup(litellm=litellm, uvicorn=uvicorn)
    if only:
        # The floors that the named servers are measured against come along.
        floors = {"floor"}
        if "v1" in only:
            floors |= {"daphne-floor", "daphne-serve-floor"}
        if "v1-uvicorn" in only:
            floors |= {"uvicorn-floor"}
        if "chat" in only:
            floors |= {"daphne-floor", "daphne-serve-floor", "daphne-chat-floor", "daphne-chat-durable-floor"}
        setup.targets = [target for target in setup.targets if target.name in only | floors]
    for target in setup.targets:
        print(f"{target.name}: server pid {target.process.pid}", file=sys.stderr, flush=True)
    figures: dict[str, str] = {
        "pinning": f"servers on core {SERVER_CORE}; load, upstream, Redis on core {LOAD_CORE}",
        "runs": (
            f"{repeat} rounds, every server one burst in turn (after a warm-up burst each); a figure is the"
            " median-CPU run of its server, a ratio the median of the rounds' ratios"
        ),
    }
    try:
        for target in setup.targets:
            # Warm at full concurrency: imports, and pools grown to the streams' count (upstream
            # connections, Redis, database threads) are a process's first burst, not its steady cost.
            measure(target, MODEL, streams, side_pids=setup.side_pids)
        rounds = _in_rounds(setup.targets, streams, repeat, setup.side_pids)
        measured: dict[str, tuple[Run, Run]] = {}
        floor_mains, floor_setups = rounds["floor"]
        for target in setup.targets:
            mains, setups = rounds[target.name]
            main, one_token = measured[target.name] = (_median(mains), _median(setups))
            # Ratios to the floor are taken round by round, then their median.
            ratio = _median_value(
                [a.per_token_us() / b.per_token_us() for a, b in zip(mains, floor_mains, strict=True)]
            )
            setup_ratio = _median_value([a.cpu_s / b.cpu_s for a, b in zip(setups, floor_setups, strict=True)])
            figures[f"{target.name} x{streams}"] = _line(main, None if target.name == "floor" else ratio)
            figures[f"{target.name} setup"] = (
                f"{one_token.cpu_s / streams * 1000:.2f} ms CPU per stream ({setup_ratio:.1f}x floor)"
            )
        figures |= _own_shares(measured, streams)
        if many:
            for target in setup.targets:
                # The durable chat floor too: the chat's design at 1,000 streams, with none of its work.
                if target.name in ("floor", "v1", "daphne-chat-durable-floor", "chat"):
                    run = measure(target, SLOW_MODEL, many, side_pids=setup.side_pids)
                    figures[f"{target.name} x{many} at 5 tok/s, all at once"] = _line(run)
                    if many_ramp_s:
                        # The same streams arriving evenly over the time one lasts: as many open
                        # at once at the peak, without one burst of setups queued on the core.
                        run = measure(target, SLOW_MODEL, many, side_pids=setup.side_pids, ramp_s=many_ramp_s)
                        figures[f"{target.name} x{many} at 5 tok/s, arriving over {many_ramp_s:g} s"] = (
                            f"{_line(run)}, at most {run.peak_open} open at once"
                        )
    finally:
        for target in setup.targets:
            figures |= {f"{target.name}: {k}": v for k, v in server_error(target.process).items()}
        for process in setup.stop:
            process.stop()
    return figures


# The servers ``--lone`` and ``--long`` measure, unless ``--only`` names others.
RELAYS = frozenset({"floor", "daphne-serve-floor", "daphne-chat-durable-floor", "v1", "chat"})


def _relays(setup: Lineup, only: frozenset[str]) -> list[Target]:
    return [target for target in setup.targets if target.name in (only or RELAYS)]


def lone_streams(
    *, streams: int = 100, spread_s: float = 2.0, rounds: int = 4, history: int = 0, only: frozenset[str] = frozenset()
) -> dict[str, str]:
    """What a stream costs when it comes alone: ``streams`` one-token streams at once, then the same
    arriving one every ``spread_s / streams`` seconds, the least CPU per stream of ``rounds`` runs
    each, for the floors and Switchyard. ``history``: the chat's conversations already hold that
    many turns (a post reads them all; ``history=0`` is a new conversation)."""
    pin_here_and_children(LOAD_CORE)
    setup = lineup(litellm=False, uvicorn=False)
    targets = _relays(setup, only)
    figures: dict[str, str] = {}
    try:
        for target in targets:
            if history and target.name == "chat":
                target.spec_for = _with_history(target.spec_for, history)
            measure(target, SETUP_MODEL, streams, side_pids=setup.side_pids, ramp_s=spread_s)  # warm
            least: list[float] = []
            for spread in (0.0, spread_s):
                runs = [
                    measure(target, SETUP_MODEL, streams, side_pids=setup.side_pids, ramp_s=spread)
                    for _ in range(rounds)
                ]
                least.append(min(run.cpu_s for run in runs) / streams * 1000)
            figures[f"{target.name}{f' ({history} turns before)' if history and target.name == 'chat' else ''}"] = (
                f"{least[0]:.2f} ms CPU per stream at once, {least[1]:.2f} ms arriving one every"
                f" {spread_s / streams * 1000:.0f} ms ({least[1] / least[0]:.1f}x)"
            )
    finally:
        for process in setup.stop:
            process.stop()
    return figures


def long_streams(
    *, tokens: int = 100, streams: int = 200, rounds: int = 3, only: frozenset[str] = frozenset()
) -> dict[str, str]:
    """What a further token costs, a stream's setup spread thin: ``streams`` streams of ``tokens``
    tokens at once, ``rounds`` times, the servers in turn within each round; CPU per token (the
    median of the rounds) and its ratio to the bare relay's (the median of the rounds' ratios)."""
    model = f"stream-{tokens}x{EVERY_MS}-{FIRST_MS}"
    pin_here_and_children(LOAD_CORE)
    setup = lineup(litellm=False, uvicorn=False, models=(model,))
    targets = _relays(setup, only | {"floor"} if only else only)  # the ratios are to the floor
    per_token: dict[str, list[float]] = {target.name: [] for target in targets}
    incomplete: dict[str, int] = {}
    try:
        for target in targets:
            measure(target, MODEL, streams, side_pids=setup.side_pids)  # warm
        for _ in range(rounds):
            for target in targets:
                run = measure(target, model, streams, side_pids=setup.side_pids)
                per_token[target.name].append(run.per_token_us())
                if run.completed < streams:
                    incomplete[target.name] = incomplete.get(target.name, 0) + streams - run.completed
    finally:
        for process in setup.stop:
            process.stop()
    figures = {}
    for name, values in per_token.items():
        ratios = [value / floor for value, floor in zip(values, per_token["floor"], strict=True)]
        lost = f"; {incomplete[name]} streams incomplete" if name in incomplete else ""
        figures[f"{name} x{streams}, {tokens} tokens"] = (
            f"{_median_value(values):.1f} µs/token ({_median_value(ratios):.2f}x floor;"
            f" rounds {', '.join(f'{value:.0f}' for value in values)}){lost}"
        )
    return figures


def release_held(upstream_url: str) -> None:
    """Let the upstream send the rest of the streams it holds after their first token
    (``FIRST_TOKEN_MODEL``; ``streamkit/upstream.py``, ``POST /release``)."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{upstream_url}/release", data=b"", method="POST"), timeout=10)


class HeldBurst:
    """A burst of ``streams`` streams held after their first token (``FIRST_TOKEN_MODEL``): ``start``
    begins it and returns once every stream has its first token (or after ``wait_s``); ``release``
    lets the upstream end them and returns the burst's ``Run``, or raises what the burst raised."""

    def __init__(
        self, target: Target, streams: int, upstream_url: str, *, side_pids: list[int], wait_s: float = 600.0
    ) -> None:
        import tempfile

        self.upstream_url, self.wait_s = upstream_url, wait_s
        self._all_first = Path(tempfile.mkdtemp(prefix="switchyard-first-tokens-")) / "all"
        self._runs: list[Run] = []
        self._failures: list[BaseException] = []

        def burst() -> None:
            try:
                first = str(self._all_first)
                self._runs.append(
                    measure(target, FIRST_TOKEN_MODEL, streams, side_pids=side_pids, first_tokens_path=first)
                )
            except BaseException as error:  # raised again by ``release``, from the caller's thread
                self._failures.append(error)

        self._loading = threading.Thread(target=burst)

    def start(self) -> None:
        self._loading.start()
        ends = time.monotonic() + self.wait_s
        while not self._all_first.exists() and self._loading.is_alive() and time.monotonic() < ends:
            time.sleep(0.005)

    def release(self) -> Run:
        try:
            release_held(self.upstream_url)
            self._loading.join()
        finally:
            shutil.rmtree(self._all_first.parent, ignore_errors=True)
        if self._failures:
            raise self._failures[0]
        return self._runs[0]


CENSUS_WAIT_S = 30.0


def tracked_objects(pid: int) -> dict[str, Any]:
    """What the collector tracks in server ``pid`` outside its frozen set once it has collected its
    garbage: ``{"total": N, "types": {type: count}}``, written by the process when sent ``SIGUSR2``
    (``streamkit/gcwatch``, loaded into every process started after ``watch_garbage_collections``)."""
    import signal

    path = Path(f"{os.environ[GC_FILE_VARIABLE]}.{pid}.objects")
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    ends = time.monotonic() + CENSUS_WAIT_S
    while not path.exists():
        if time.monotonic() > ends:
            raise RuntimeError(f"server {pid} wrote no census of its objects in {CENSUS_WAIT_S:.0f} s")
        time.sleep(0.02)
    return json.loads(path.read_text())


def held_objects(*, streams: int = 200, rounds: int = 3, only: frozenset[str] = frozenset()) -> dict[str, str]:
    """What each open stream keeps alive for the garbage collector to walk: ``streams`` streams held
    after their first token (the upstream holds them, ``FIRST_TOKEN_MODEL``), the server's live
    tracked objects then less before the burst, divided by ``streams``; the fewest of ``rounds``
    bursts, and the types that make most of it. A young collection walks what is alive in the young
    generation, so this is what makes a burst's collections long, and how soon one comes
    (``project/housekeeping.py``)."""
    if GC_FILE_VARIABLE not in os.environ:
        watch_garbage_collections()
    pin_here_and_children(LOAD_CORE)
    setup = lineup(litellm=False, uvicorn=False)
    figures: dict[str, str] = {}
    try:
        for target in _relays(setup, only):
            measure(target, MODEL, streams, side_pids=[])  # warm: imports, pools, caches
            held = [_held_once(target, streams, setup.upstream_url) for _ in range(rounds)]
            fewest = min(held, key=lambda per_type: sum(per_type.values()))
            most = sorted(fewest.items(), key=lambda item: -item[1])[:8]
            figures[f"{target.name}, {streams} held after their first token"] = (
                f"{sum(fewest.values()):.0f} live tracked objects per open stream (rounds"
                f" {', '.join(f'{sum(per_type.values()):.0f}' for per_type in held)}); most: "
                + ", ".join(f"{name} {count:.1f}" for name, count in most)
            )
    finally:
        for process in setup.stop:
            process.stop()
    return figures


def _held_once(target: Target, streams: int, upstream_url: str) -> dict[str, float]:
    """Tracked objects per stream, by type, with ``streams`` streams held after their first token."""
    pid = target.process.pid
    time.sleep(1.5)  # daphne lets its finished requests go in a sweep once a second
    before = tracked_objects(pid)
    held = HeldBurst(target, streams, upstream_url, side_pids=[])
    try:
        held.start()
        time.sleep(0.2)  # what the last first tokens' writes leave behind settles
        during = tracked_objects(pid)
    finally:
        run = held.release()
    if run.completed != streams:
        raise RuntimeError(f"{target.name}: not every held stream completed: {run.errors}")
    by_type: dict[str, float] = {}
    for label in during["types"].keys() | before["types"].keys():
        kind = label.split(" ", 1)[0]  # coroutines are counted by their function: here, by their type
        by_type[kind] = by_type.get(kind, 0) + (during["types"].get(label, 0) - before["types"].get(label, 0))
    return {kind: count / streams for kind, count in by_type.items() if count}


def _with_history(spec_for: Callable[[str, int], dict[str, Any]] | None, turns: int) -> Any:
    """``spec_for`` whose conversations hold ``turns`` earlier messages, user and assistant in turn."""
    from chat.models import Message
    from tests.bench.request_parse import conversation

    assert spec_for is not None
    earlier = conversation(turns)[1:]

    def with_history(model: str, streams: int) -> dict[str, Any]:
        spec = spec_for(model, streams)
        rows = [
            Message(conversation_id=conversation_id, role=message["role"], content=message["content"])
            for conversation_id in spec["conversations"]
            for message in earlier
        ]
        Message.objects.bulk_create(rows, batch_size=2000)
        return spec

    return with_history


def _own_shares(measured: dict[str, tuple[Run, Run]], streams: int) -> dict[str, str]:
    """What Switchyard adds over the server it runs on (its server's floor), and what that server
    adds over the bare aiohttp relay: per relayed token, and per stream setup."""

    def difference(more: str, less: str) -> str:
        (a, a_setup), (b, b_setup) = measured[more], measured[less]
        return (
            f"{a.per_token_us() - b.per_token_us():.0f} µs/token, "
            f"{(a_setup.cpu_s - b_setup.cpu_s) / streams * 1000:.2f} ms setup per stream"
        )

    shares = {}
    # Switchyard on daphne is measured against daphne as ``serve`` runs it (with the process's
    # patches, ``project/edge/daphne.py``), so that what those patches save is not counted as ours.
    pairs = (
        ("v1", "daphne-serve-floor", "daphne"),
        ("v1-uvicorn", "uvicorn-floor", "uvicorn"),
        ("chat", "daphne-chat-floor", "daphne"),
    )
    for switchyard, server_floor, server in pairs:
        if {switchyard, server_floor, "floor"} <= measured.keys():
            shares[f"{switchyard}: Switchyard's own share"] = difference(switchyard, server_floor)
            served = "daphne-serve-floor" if server == "daphne" else server_floor
            if served in measured:
                shares[f"{switchyard}: {server}'s own share, as served"] = difference(served, "floor")
    if {"chat", "daphne-chat-durable-floor", "daphne-chat-floor"} <= measured.keys():
        # What the chat's design costs (its reply appended to a Redis Stream before it is relayed),
        # at redis-py's floor; and Switchyard's share over that.
        shares["chat: the durable stream's own share, at redis-py's floor"] = difference(
            "daphne-chat-durable-floor", "daphne-chat-floor"
        )
        shares["chat: Switchyard's own share over the durable floor"] = difference("chat", "daphne-chat-durable-floor")
    if {"daphne-floor", "daphne-serve-floor"} <= measured.keys():
        shares["daphne: what serve's patches save it"] = difference("daphne-floor", "daphne-serve-floor")
    return shares


# --- before and after, interleaved ------------------------------------------------------------


def _spread(values: list[float], unit: str, digits: int) -> str:
    ordered = sorted(values)
    median = ordered[len(ordered) // 2]
    return f"{median:.{digits}f} {unit} (median; {ordered[0]:.{digits}f}-{ordered[-1]:.{digits}f})"


def _compared(before: Path, kind: str) -> tuple[Any, list[Any], dict[str, Target]]:
    """The upstream, and ``before``'s server and this checkout's, both up on the server core."""
    pin_here_and_children(LOAD_CORE)
    upstream = start_upstream()
    secret, user = registry_and_key(upstream.url)
    headers = {"Authorization": f"Bearer {secret}"}
    servers = {"before": start_switchyard("daphne", before), "after": start_switchyard("daphne")}
    targets = {
        name: _chat_target(process, secret, user) if kind == "chat" else Target(f"v1-{name}", process, "v1", headers)
        for name, process in servers.items()
    }
    return upstream, list(servers.values()), targets


def _alternating(
    before: Path, kind: str, rounds: int, run: Callable[[Target], T], *, warm_streams: int = 200
) -> dict[str, list[T]]:
    """``run`` on ``before``'s server and this checkout's, ``rounds`` times each, the order
    alternating round by round, after a warm-up burst of ``warm_streams`` each."""
    upstream, servers, targets = _compared(before, kind)
    results: dict[str, list[T]] = {"before": [], "after": []}
    try:
        for target in targets.values():
            measure(target, MODEL, warm_streams, side_pids=[])
        for round_ in range(rounds):
            for name in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
                results[name].append(run(targets[name]))
    finally:
        for process in [*servers, upstream]:
            process.stop()
    return results


def compare(
    before: Path, *, streams: int = 200, rounds: int = 12, kind: str = "v1", setup_only: bool = False
) -> dict[str, str]:
    """``/v1`` (or chat, ``kind``) served by ``before`` (another checkout, run with this
    interpreter) and by this checkout, both up at once on the server core and given bursts in turn
    (the order alternating each round), so both see the same machine state burst by burst: CPU per
    token, setup CPU per stream and TTFT added p99 of each.

    ``setup_only``: one-token bursts alone, many rounds of them (each takes a second or two), and the
    rounds' paired ratios: a cut of a few percent of a stream's setup is inside the spread of the
    bursts' medians, but shows in the ratio of two bursts run back to back."""
    if setup_only:
        return _compare_setup(before, streams=streams, rounds=rounds, kind=kind)

    def burst(target: Target) -> tuple[Run, Run]:
        return measure(target, MODEL, streams, side_pids=[]), measure(target, SETUP_MODEL, streams, side_pids=[])

    runs: dict[str, dict[str, list[float]]] = {}
    for name, bursts in _alternating(before, kind, rounds, burst, warm_streams=streams).items():
        runs[name] = {
            "token": [main.per_token_us() for main, _ in bursts],
            "setup": [one_token.cpu_s / streams * 1000 for _, one_token in bursts],
            "ttft": [main.ttft(0.99) for main, _ in bursts],
        }
    figures = {"compared": f"{before} (before) and {ROOT} (after), {rounds} rounds of {streams} streams"}
    for name, values in runs.items():
        figures[f"{kind} {name}"] = (
            f"{_spread(values['token'], 'µs/token', 1)}; setup {_spread(values['setup'], 'ms', 3)}; "
            f"TTFT added p99 {_spread(values['ttft'], 'ms', 0)}"
        )
    return figures


def compare_many(before: Path, *, many: int, ramp_s: float, rounds: int, kind: str) -> dict[str, str]:
    """``before`` and this checkout under ``many`` 5 tokens/s streams arriving over ``ramp_s``
    seconds, runs alternating: CPU per token and TTFT added p99 of each run. Arrivals spread out
    share less (batches, pipelines) than a burst does."""
    runs = _alternating(
        before, kind, rounds, lambda target: measure(target, SLOW_MODEL, many, side_pids=[], ramp_s=ramp_s)
    )
    figures = {"compared": f"{before} (before) and {ROOT} (after), {rounds} runs of {many} {kind} streams at 5 tok/s"}
    for name, measured in runs.items():
        figures[f"{kind} {name}"] = (
            f"{', '.join(f'{run.per_token_us():.0f}' for run in measured)} µs/token; TTFT added p99 "
            f"{', '.join(f'{run.ttft(0.99):.0f}' for run in measured)} ms; "
            f"{sum(run.completed for run in measured)}/{many * len(measured)} complete"
        )
        if any(run.gc_pauses for run in measured):
            figures[f"{kind} {name} GC"] = "; ".join(run.gc_summary() for run in measured)
    return figures


def _compare_setup(before: Path, *, streams: int, rounds: int, kind: str) -> dict[str, str]:
    one_token_bursts = _alternating(
        before, kind, rounds, lambda target: measure(target, SETUP_MODEL, streams, side_pids=[]), warm_streams=streams
    )
    setup_ms = {name: [run.cpu_s / streams * 1000 for run in runs] for name, runs in one_token_bursts.items()}
    ratios = sorted(a / b for a, b in zip(setup_ms["after"], setup_ms["before"], strict=True))
    cheaper = sum(ratio < 1 for ratio in ratios)
    # The middle half of the rounds' ratios: where the change sits, without the bursts a neighbour slowed.
    quarter = len(ratios) // 4
    return {
        "compared": f"{before} (before) and {ROOT} (after), {rounds} rounds of {streams} one-token {kind} streams",
        f"{kind} setup before": _spread(setup_ms["before"], "ms", 3),
        f"{kind} setup after": _spread(setup_ms["after"], "ms", 3),
        f"{kind} setup after/before": (
            f"{ratios[len(ratios) // 2]:.3f} (median of the rounds' ratios; middle half "
            f"{ratios[quarter]:.3f}-{ratios[-1 - quarter]:.3f}); after cheaper in {cheaper} of {len(ratios)} rounds"
        ),
    }


def run() -> dict[str, str]:
    """Entry point of ``python -m tests.bench``; LiteLLM too when SWITCHYARD_BENCH_LITELLM=1."""
    if shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2:
        return {"skipped": "needs taskset and two cores"}
    return benchmark(litellm=os.environ.get("SWITCHYARD_BENCH_LITELLM") == "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--many", type=int, default=1000, help="streams of the 5 tokens/s run (0 skips it)")
    parser.add_argument(
        "--many-ramp-s",
        type=float,
        default=5.0,
        help="also run the 5 tokens/s streams arriving evenly over this many seconds (0 skips it)",
    )
    parser.add_argument("--litellm", action="store_true")
    parser.add_argument("--uvicorn", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of bursts; a figure is the median-CPU run of its server"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated servers to measure (v1, chat, ...); the floor always runs"
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="another checkout: its /v1 (chat with --only chat) and this one's, side by side, bursts alternating"
        " (--rounds of them)",
    )
    parser.add_argument("--rounds", type=int, default=12, help="bursts per server with --before")
    parser.add_argument(
        "--many-only",
        action="store_true",
        help="with --before: the --many streams at 5 tokens/s arriving over --many-ramp-s, runs alternating",
    )
    parser.add_argument(
        "--lone",
        action="store_true",
        help="one-token streams at once, then arriving one by one over 2 s: what a stream costs alone",
    )
    parser.add_argument("--history", type=int, default=0, help="with --lone: turns each chat conversation holds")
    parser.add_argument(
        "--long",
        type=int,
        default=0,
        metavar="TOKENS",
        help="streams of this many tokens (setup spread thin): what a further token costs, --repeat rounds",
    )
    parser.add_argument(
        "--objects",
        action="store_true",
        help="the garbage collector's tracked objects per open stream, streams held after their first token",
    )
    parser.add_argument(
        "--setup-only",
        action="store_true",
        help="with --before: one-token bursts only, and the rounds' paired ratios (use 40 rounds or more)",
    )
    parser.add_argument(
        "--gc", action="store_true", help="also report each run's garbage collections in the server (streamkit/gcwatch)"
    )
    options = parser.parse_args(argv)
    if options.gc:
        watch_garbage_collections()
    from tests.bench.environment import bench_environment

    bench_environment()
    if options.lone:
        only = frozenset(name for name in options.only.split(",") if name)
        for name, value in lone_streams(history=options.history, only=only).items():
            print(f"{name}: {value}", flush=True)
        return 0
    if options.objects:
        only = frozenset(name for name in options.only.split(",") if name)
        for name, value in held_objects(streams=options.streams, rounds=max(1, options.repeat), only=only).items():
            print(f"{name}: {value}", flush=True)
        return 0
    if options.long:
        only = frozenset(name for name in options.only.split(",") if name)
        figures = long_streams(tokens=options.long, streams=options.streams, rounds=max(1, options.repeat), only=only)
        for name, value in figures.items():
            print(f"{name}: {value}", flush=True)
        return 0
    if options.before is not None:
        kind = "chat" if options.only == "chat" else "v1"
        before = options.before.resolve()
        if options.many_only:
            compared = compare_many(
                before, many=options.many, ramp_s=options.many_ramp_s, rounds=options.rounds, kind=kind
            )
        else:
            compared = compare(
                before, streams=options.streams, rounds=options.rounds, kind=kind, setup_only=options.setup_only
            )
        for name, value in compared.items():
            print(f"{name}: {value}", flush=True)
        return 0
    figures = benchmark(
        streams=options.streams,
        many=options.many,
        many_ramp_s=options.many_ramp_s,
        litellm=options.litellm,
        uvicorn=options.uvicorn,
        repeat=max(1, options.repeat),
        only=frozenset(name for name in options.only.split(",") if name),
    )
    for name, value in figures.items():
        print(f"{name}: {value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

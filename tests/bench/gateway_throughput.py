"""The gateway's cost: direct to the simulator vs through Switchyard's /v1 (and LiteLLM's proxy).

One run measures, against one zero-latency simulator, non-streaming with the cache off:
- concurrency 1: median and p99 latency direct and through the gateway (``wrk``), the differences
  are what the gateway adds (targets: at most 1.5 ms at the median, 10 ms at p99); and through
  daphne's floor, a bare ASGI relay served by daphne as ``serve`` runs it, with the process's
  patches (``streamkit/asgirelay.py``): what daphne and one relayed call add before any of
  Switchyard's work;
- concurrency 16: requests per second direct and through (target: 5x LiteLLM's proxy);
- the same with a long conversation: 100 turns (26 kB) brought again with every call, the newest
  message new each time, as a chat client sends them;
- streaming: median time to the first content chunk, direct and through (target: < 5 ms added);
- the resident memory of the web process after the short calls (target < 150 MB), and after the
  long conversation, whose prompt is counted with the tokenizer (about 40 MB, loaded on first use).
The gateway runs as one server process with authentication, rate limits (a key with rpm, tpm and
a budget), the breaker and the request log on. Load comes from ``wrk`` (Debian: ``apt-get install
wrk``), a compiled client that does not eat the server's CPU.

    python -m tests.bench gateway_throughput            # daphne (what ``serve`` runs)
    python -m tests.bench.gateway_throughput --server uvicorn --litellm --seconds 5

``--litellm`` also measures LiteLLM's proxy (one worker, same upstream), installed on first use
into a separate virtualenv (``/tmp/litellm-venv``; slow). ``--server uvicorn`` needs uvicorn
installed. Figures move with the machine's load: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.bench.environment import bench_model_and_key
from tests.bench.request_parse import conversation
from tests.bench.streaming import start_server_floor

MODEL = "bench-gateway"
BODY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Describe a quiet harbour in one sentence."}],
    "max_tokens": 16,
    "temperature": 0.7,
}
# A conversation of 100 turns (26 kB) whose newest message differs in every call.
NEWEST = "@newest@"
LONG_TURNS = 100
LONG_BODY = {**BODY, "messages": [*conversation(LONG_TURNS), {"role": "user", "content": f"And {NEWEST}?"}]}
LITELLM_VENV = Path("/tmp/litellm-venv")
STREAM_CALLS = 200
WARMUP_S = 1


class WrkMissing(RuntimeError):
    pass


# --- set-up ----------------------------------------------------------------------------------


def _registry_and_key(simulator_url: str) -> str:
    # Limits high enough never to refuse, so that every request pays for checking them.
    return bench_model_and_key(
        simulator_url,
        MODEL,
        username="bench",
        model_fields={"input_per_mtok": 1, "output_per_mtok": 2, "cache_semantic": False},
        key_fields={"rpm": 10_000_000, "tpm": 1_000_000_000, "monthly_budget_usd": Decimal("1000000")},
    )


def _start_server(kind: str) -> Any:
    from tests.support import (
        ManagedProcess,
        child_env,
        database_url_for_current_connection,
        free_port,
        log_path,
        start_web,
        wait_http,
    )

    if kind == "daphne":
        return start_web()
    port = free_port()
    process = ManagedProcess(
        [sys.executable, "-m", "uvicorn", "project.asgi:application", "--port", str(port), "--no-access-log"],
        child_env(DATABASE_URL=database_url_for_current_connection()),
        log_path("web-uvicorn"),
    ).start()
    process.url = f"http://127.0.0.1:{port}"
    wait_http(f"{process.url}/healthz", process=process.process)
    return process


def litellm_install() -> Path:
    """LiteLLM's proxy command, installed into its own virtualenv on first use."""
    litellm = LITELLM_VENV / "bin" / "litellm"
    if not litellm.exists():
        print("   installing LiteLLM's proxy into /tmp/litellm-venv (once; takes minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"]
        subprocess.run(pip, check=True)
    return litellm


def _start_litellm(simulator_url: str, master_key: str) -> Any:
    from tests.support import ManagedProcess, child_env, free_port, log_path, wait_http

    litellm = litellm_install()
    config = Path(tempfile.mkdtemp(prefix="litellm-bench-")) / "config.yaml"
    model = {"model": f"openai/{MODEL}", "api_base": f"{simulator_url}/v1", "api_key": "bench"}
    # The master key is the proxy's only authentication without a database; it refuses to start without one.
    settings = {"master_key": master_key}
    config.write_text(
        json.dumps({"model_list": [{"model_name": MODEL, "litellm_params": model}], "general_settings": settings})
    )
    port = free_port()
    env = {key: value for key, value in child_env().items() if key != "DATABASE_URL"}
    process = ManagedProcess(
        [str(litellm), "--config", str(config), "--port", str(port), "--num_workers", "1"], env, log_path("litellm")
    ).start()
    process.url = f"http://127.0.0.1:{port}"
    wait_http(f"{process.url}/health/liveliness", process=process.process, timeout=180)
    return process


# --- wrk -------------------------------------------------------------------------------------


def _wrk_script(body: dict[str, Any], headers: dict[str, str]) -> Path:
    """A wrk script that posts ``body``; where its text holds ``NEWEST``, each request puts its
    own number there instead (a conversation's next call: the newest message is new)."""
    text = json.dumps(body)
    lines = ['wrk.method = "POST"']
    if NEWEST in text:
        before, after = text.split(NEWEST, 1)
        lines += [f"local before, after, n = {json.dumps(before)}, {json.dumps(after)}, 0"]
        lines += ["request = function() n = n + 1; return wrk.format(nil, nil, nil, before .. n .. after) end"]
    else:
        lines += [f"wrk.body = {json.dumps(text)}"]
    lines += [f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in headers.items()]
    path = Path(tempfile.mkstemp(prefix="wrk-", suffix=".lua")[1])
    path.write_text("\n".join(lines) + "\n")
    return path


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, script: Path, *, connections: int, seconds: int, pid: int | None = None) -> dict[str, float]:
    """Median and p99 latency (s), requests/s and (with ``pid``) that process's CPU seconds per request
    of a ``wrk`` run; raises if any answer was not 2xx."""
    if shutil.which("wrk") is None:
        raise WrkMissing("wrk is not installed: apt-get install -y wrk")
    base = ["wrk", "-t1", f"-c{connections}", "-s", str(script), "--latency", "--timeout", "30s", url]
    subprocess.run([*base[:3], f"-d{WARMUP_S}s", *base[3:]], check=True, capture_output=True)
    cpu_before = _cpu_s(pid)
    output = subprocess.run([*base[:3], f"-d{seconds}s", *base[3:]], check=True, capture_output=True, text=True)
    cpu = _cpu_s(pid) - cpu_before
    text = output.stdout
    if "Non-2xx" in text or "Socket errors" in text:
        raise RuntimeError(f"wrk saw failures against {url}:\n{text}")
    median = re.search(r"^\s+50%\s+(\S+)\s*$", text, re.MULTILINE)
    tail = re.search(r"^\s+99%\s+(\S+)\s*$", text, re.MULTILINE)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)$", text, re.MULTILINE)
    if median is None or tail is None or rate is None:
        raise RuntimeError(f"could not read wrk's output:\n{text}")
    served = re.search(r"^\s+(\d+) requests in", text, re.MULTILINE)
    figures = {"median_s": _seconds(median.group(1)), "p99_s": _seconds(tail.group(1)), "rps": float(rate.group(1))}
    if pid is not None and served is not None:
        figures["cpu_per_request_s"] = cpu / max(1, int(served.group(1)))
    return figures


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# --- streaming -------------------------------------------------------------------------------


def _has_content(line: str) -> bool:
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[len("data: ") :]).get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


async def _ttft(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> float:
    body = {**BODY, "stream": True}
    started = time.perf_counter()
    first: float | None = None
    async with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and _has_content(line):
                first = time.perf_counter() - started
    if first is not None:
        return first
    raise RuntimeError(f"no content chunk from {url}")


async def _ttft_pair(direct_url: str, gateway_url: str, secret: str) -> tuple[float, float]:
    """Median time to the first content chunk, direct and through, alternating calls."""
    gateway_headers = {"Authorization": f"Bearer {secret}"}
    direct, through = [], []
    async with httpx.AsyncClient(timeout=30) as client:
        for number in range(STREAM_CALLS + 20):
            pair = (
                await _ttft(client, direct_url, {}),
                await _ttft(client, gateway_url, gateway_headers),
            )
            if number >= 20:
                direct.append(pair[0])
                through.append(pair[1])
    return statistics.median(direct), statistics.median(through)


# --- the run ---------------------------------------------------------------------------------


def _rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def measure(*, server: str = "daphne", litellm: bool = False, seconds: int = 5) -> dict[str, object]:
    from tests.bench.environment import bench_simulator

    simulator = bench_simulator()
    httpx.put(f"{simulator.url}/_sim/models/{MODEL}", json={"latency_ms": 0, "ttft_ms": 0, "tokens_per_s": 0})
    secret = _registry_and_key(simulator.url)
    direct_url = f"{simulator.url}/v1/chat/completions"
    direct_script = _wrk_script(BODY, {"Content-Type": "application/json"})
    gateway_script = _wrk_script(BODY, {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"})
    web = _start_server(server)
    figures: dict[str, object] = {"server": f"{server}, one process"}
    floor = start_server_floor(server, simulator.url, core=None, serve_patches=server == "daphne")
    try:
        gateway_url = f"{web.url}/v1/chat/completions"
        direct_1 = wrk(direct_url, direct_script, connections=1, seconds=seconds)
        floor_1 = wrk(f"{floor.url}/v1/chat/completions", direct_script, connections=1, seconds=seconds)
        floor.stop()
        gateway_1 = wrk(gateway_url, gateway_script, connections=1, seconds=seconds)
        direct_16 = wrk(direct_url, direct_script, connections=16, seconds=seconds, pid=simulator.pid)
        gateway_16 = wrk(gateway_url, gateway_script, connections=16, seconds=seconds, pid=web.pid)
        rss = _rss_mb(web.pid)  # before the long conversation loads the tokenizer (about 40 MB)
        long_direct_script = _wrk_script(LONG_BODY, {"Content-Type": "application/json"})
        long_direct = wrk(direct_url, long_direct_script, connections=16, seconds=seconds)
        long_script = _wrk_script(LONG_BODY, {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"})
        long_16 = wrk(gateway_url, long_script, connections=16, seconds=seconds, pid=web.pid)
        ttft_direct, ttft_gateway = asyncio.run(_ttft_pair(direct_url, gateway_url, secret))
        rss_tokenizer = _rss_mb(web.pid)
    finally:
        floor.stop()
        web.stop()
    added = gateway_1["median_s"] - direct_1["median_s"]
    floor_added = floor_1["median_s"] - direct_1["median_s"]
    added_p99 = gateway_1["p99_s"] - direct_1["p99_s"]
    ttft_added = ttft_gateway - ttft_direct
    figures |= {
        "c1_median_direct": _ms(direct_1["median_s"]),
        "c1_median_gateway": _ms(gateway_1["median_s"]),
        "c1_added_latency": f"{_ms(added)} (target <= 1.5 ms: {'met' if added <= 0.0015 else 'NOT met'})",
        f"c1_added_latency_{server}_floor": f"{_ms(floor_added)} (Switchyard's own share: {_ms(added - floor_added)})",
        "c1_p99_direct": _ms(direct_1["p99_s"]),
        "c1_p99_gateway": _ms(gateway_1["p99_s"]),
        "c1_added_p99": f"{_ms(added_p99)} (target <= 10 ms: {'met' if added_p99 <= 0.010 else 'NOT met'})",
        "c16_rps_direct": f"{direct_16['rps']:.0f}",
        "c16_rps_gateway": f"{gateway_16['rps']:.0f} ({gateway_16['rps'] / direct_16['rps']:.0%} of direct)",
        "c16_median_gateway": _ms(gateway_16["median_s"]),
        # CPU of the serving process per call: the least load-sensitive figure on a shared machine.
        "cpu_per_call_simulator": _ms(direct_16["cpu_per_request_s"]),
        "cpu_per_call_gateway": _ms(gateway_16["cpu_per_request_s"]),
        f"long_conversation_c16_rps_direct ({LONG_TURNS} turns)": f"{long_direct['rps']:.0f}",
        "long_conversation_c16_rps_gateway": f"{long_16['rps']:.0f} ({long_16['rps'] / long_direct['rps']:.0%})",
        "long_conversation_cpu_per_call_gateway": _ms(long_16["cpu_per_request_s"]),
        "stream_ttft_direct": _ms(ttft_direct),
        "stream_ttft_gateway": _ms(ttft_gateway),
        "stream_ttft_added": f"{_ms(ttft_added)} (target < 5 ms: {'met' if ttft_added < 0.005 else 'NOT met'})",
        "web_rss_after_run": f"{rss:.0f} MB (target < 150 MB: {'met' if rss < 150 else 'NOT met'})",
        "web_rss_with_the_tokenizer": f"{rss_tokenizer:.0f} MB (after the long conversation, counted in tokens)",
    }
    if litellm:
        figures |= _litellm_figures(simulator.url, direct_1, gateway_16, seconds)
    return figures


def _litellm_figures(
    simulator_url: str, direct_1: dict[str, float], gateway_16: dict[str, float], seconds: int
) -> dict[str, object]:
    master_key = f"sk-{secrets.token_hex(32)}"
    proxy = _start_litellm(simulator_url, master_key)
    try:
        script = _wrk_script(BODY, {"Content-Type": "application/json", "Authorization": f"Bearer {master_key}"})
        url = f"{proxy.url}/v1/chat/completions"
        litellm_1 = wrk(url, script, connections=1, seconds=seconds)
        litellm_16 = wrk(url, script, connections=16, seconds=seconds, pid=proxy.pid)
        long_script = _wrk_script(
            LONG_BODY, {"Content-Type": "application/json", "Authorization": f"Bearer {master_key}"}
        )
        long_16 = wrk(url, long_script, connections=16, seconds=seconds, pid=proxy.pid)
        rss = _rss_mb(proxy.pid)
    finally:
        proxy.stop()
    ratio = gateway_16["rps"] / litellm_16["rps"]
    return {
        "litellm_c1_added_latency": _ms(litellm_1["median_s"] - direct_1["median_s"]),
        "litellm_c16_rps": f"{litellm_16['rps']:.0f}",
        "litellm_c16_median": _ms(litellm_16["median_s"]),
        "litellm_cpu_per_call": _ms(litellm_16["cpu_per_request_s"]),
        "gateway_vs_litellm_c16": f"{ratio:.1f}x (target >= 5x: {'met' if ratio >= 5 else 'NOT met'})",
        "litellm_long_conversation_c16_rps": f"{long_16['rps']:.0f}",
        "litellm_long_conversation_cpu_per_call": _ms(long_16["cpu_per_request_s"]),
        "litellm_rss_after_run": f"{rss:.0f} MB",
    }


def run() -> dict[str, object]:
    """Entry point of ``python -m tests.bench``: daphne; LiteLLM when SWITCHYARD_BENCH_LITELLM=1."""
    try:
        return measure(litellm=os.environ.get("SWITCHYARD_BENCH_LITELLM") == "1")
    except WrkMissing as missing:
        return {"skipped": str(missing)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--litellm", action="store_true", help="also measure LiteLLM's proxy (slow the first time)")
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    options = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    from tests.bench.environment import bench_environment

    bench_environment()
    for name, value in measure(server=options.server, litellm=options.litellm, seconds=options.seconds).items():
        print(f"{name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

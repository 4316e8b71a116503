"""Throughput through nginx with one web process behind it, then with both (wrk).

The figures go to ``var/scale-report.json``, with the web processes' CPU time and how busy
the machine was. On a small shared machine the ratio says little about a real deployment:
wrk, nginx, PostgreSQL, Redis and whatever else runs share the same cores, and when they are
saturated the ratio only shows the scheduler's shares (measured here from 0.99 to 1.88 in
consecutive runs). So the test asserts what holds everywhere: every request served, all of
the first run's work done by the one process, the second run's split between both.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.scale.conftest import CACHED_MODEL, api, request_log_settled
from tests.scale.fleet import Fleet, start_nginx
from tests.support import ROOT, ManagedProcess

pytestmark = pytest.mark.scale

REPORT = ROOT / "var" / "scale-report.json"
DURATION_S = 5
CONNECTIONS = 32


@dataclass
class LoadRun:
    upstreams: int
    requests: int
    requests_per_s: float
    errors: int
    non_2xx: int
    latency_p50_ms: float
    latency_p99_ms: float
    web_cpu_s: list[float]
    machine_idle_share: float


# One cacheable completion: the gateway's hot path (key, limits, cache, log) without a provider call.
COMPLETION = {"model": CACHED_MODEL, "messages": [{"role": "user", "content": "Ping?"}], "temperature": 0}


def wrk_script(path: Path, secret: str) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(COMPLETION))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {secret}"\n'
    )
    return path


def milliseconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, script: Path, upstreams: int, fleet: Fleet) -> LoadRun:
    cpu_before, machine_before = cpu_seconds(fleet), psutil.cpu_times()
    # A slow answer on a busy machine is not an error: only failures count (wrk's default is 2 s).
    command = [shutil.which("wrk") or "wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "--timeout", "20s"]
    command.append("--latency")
    output = subprocess.run([*command, "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    cpu_after, machine_after = cpu_seconds(fleet), psutil.cpu_times()
    total = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    latency = dict(re.findall(r"^\s*(50|99)%\s+([\d.]+(?:us|ms|s))\s*$", output, re.MULTILINE))
    assert total and rate and set(latency) == {"50", "99"}, output
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return LoadRun(
        upstreams=upstreams,
        requests=int(total[1]),
        requests_per_s=float(rate[1]),
        errors=errors,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        latency_p50_ms=milliseconds(latency["50"]),
        latency_p99_ms=milliseconds(latency["99"]),
        web_cpu_s=[round(after - before, 2) for before, after in zip(cpu_before, cpu_after, strict=True)],
        machine_idle_share=round(idle_share(machine_before, machine_after), 2),
    )


def idle_share(before: Any, after: Any) -> float:
    total = sum(after) - sum(before)
    return (after.idle - before.idle) / total if total else 0.0


def cpu_seconds(fleet: Fleet) -> list[float]:
    """CPU time each web process has used so far."""
    return [sum(psutil.Process(web.pid).cpu_times()[:2]) for web in fleet.webs]


def rss_mb(processes: list[ManagedProcess]) -> list[int]:
    return [psutil.Process(p.pid).memory_info().rss // 2**20 for p in processes]


def test_load_through_nginx_is_spread_over_both_web_processes_and_the_throughput_ratio_reported(
    fleet: Fleet, alice_key: str, simulator: Any, tmp_path: Path
) -> None:
    script = wrk_script(tmp_path / "completion.lua", alice_key)
    with api(fleet.proxy, alice_key) as client:  # the first call fills the cache for everyone
        warm = client.post("/v1/chat/completions", json=COMPLETION)
    assert warm.status_code == 200, warm.text
    for web in fleet.webs:  # a process restarted by an earlier test still has its first imports to do
        with api(web.url, alice_key) as client:
            answers = [client.post("/v1/chat/completions", json=COMPLETION) for _ in range(5)]
        assert all(a.headers["x-cache"] == "HIT" for a in answers), answers[-1].text

    single = start_nginx(fleet.upstreams[:1], tmp_path / "nginx-single")
    try:
        one = wrk(f"{single.url}/v1/chat/completions", script, upstreams=1, fleet=fleet)
    finally:
        single.stop()
    # A fresh nginx for both too: the fleet's may still hold a web process restarted by an earlier
    # test as failed (max_fails), and send it nothing for a few seconds.
    both = start_nginx(fleet.upstreams, tmp_path / "nginx-both")
    try:
        two = wrk(f"{both.url}/v1/chat/completions", script, upstreams=2, fleet=fleet)
    finally:
        both.stop()
    request_log_settled(steady_s=1.5)

    ratio = two.requests_per_s / one.requests_per_s
    REPORT.parent.mkdir(exist_ok=True)
    report = {"endpoint": "POST /v1/chat/completions (cached answer)", "connections": CONNECTIONS}
    report |= {"duration_s": DURATION_S, "one_web": asdict(one), "two_webs": asdict(two), "ratio": round(ratio, 2)}
    report["rss_mb_after"] = {"webs": rss_mb(fleet.webs), "workers": rss_mb(fleet.workers)}
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\nthroughput through nginx: one web {one.requests_per_s:.0f} req/s, two {two.requests_per_s:.0f} req/s, "
        f"ratio {ratio:.2f}; machine idle {one.machine_idle_share:.0%} / {two.machine_idle_share:.0%} "
        f"(written to {REPORT.relative_to(ROOT)})"
    )

    assert one.errors == two.errors == 0 and one.non_2xx == two.non_2xx == 0, report
    # One process did all the work of the first run; both shared the second.
    assert one.web_cpu_s[1] < 0.2 * one.web_cpu_s[0], report
    assert min(two.web_cpu_s) > 0.3 * max(two.web_cpu_s), report

"""Supervision of the processes ``manage.py serve`` runs.

Each child runs in its own session (process group), so a Ctrl-C in the terminal reaches only the
supervisor, which then stops the children in reverse start order: SIGTERM to the group, a grace
period, then SIGKILL to the group and to every descendant seen (RQ forks its work horses into
groups of their own). A child that dies while the stack runs is restarted after an exponential
backoff; one that keeps dying (``max_failures`` times in a row, each within ``healthy_after_s`` of
its start) stops the whole stack with a message, rather than flapping forever. A child that dies
before it is ready stops the start-up at once, with its last output lines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Protocol

import psutil

Clock = Callable[[], float]


class Output(Protocol):
    def write(self, text: str, /) -> object: ...

    def flush(self) -> None: ...


class SupervisorError(Exception):
    """The stack cannot run: a child failed to start, or keeps dying."""


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None = None
    #: Answers True once the child serves; None means "running is ready".
    ready: Callable[[], bool] | None = None
    ready_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0
    #: Children of one tier start together and stop together; tiers stop in reverse order.
    tier: int = 0


@dataclass(frozen=True)
class RestartPolicy:
    base_s: float = 1.0
    max_s: float = 30.0
    max_failures: int = 5
    healthy_after_s: float = 60.0

    def delay(self, failures: int) -> float:
        return float(min(self.max_s, self.base_s * 2 ** max(failures - 1, 0)))


@dataclass
class Child:
    spec: ChildSpec
    write: Callable[[str, str], None]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=25))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, now: float) -> None:
        self.process = subprocess.Popen(
            self.spec.argv,
            env=dict(self.spec.env),
            cwd=self.spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started_at, self.restart_at = now, None
        threading.Thread(target=self._relay, args=(self.process.stdout,), daemon=True).start()

    def _relay(self, stream: IO[bytes] | None) -> None:
        assert stream is not None
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            self.tail.append(line)
            self.write(self.spec.name, line)
        stream.close()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def last_output(self) -> str:
        return "\n".join(f"    {line}" for line in list(self.tail)[-15:]) or "    (no output)"

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True) if self.running() else []  # type: ignore[union-attr]
        except psutil.Error:
            return []

    def signal_group(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class Supervisor:
    def __init__(
        self,
        specs: list[ChildSpec],
        *,
        output: Output,
        policy: RestartPolicy | None = None,
        clock: Clock = time.monotonic,
        poll_s: float = 0.2,
    ) -> None:
        self.specs = specs
        self.output = output
        self.policy = policy or RestartPolicy()
        self.clock = clock
        self.poll_s = poll_s
        self.children: list[Child] = []
        self.stop_requested = threading.Event()
        self.hurry = threading.Event()
        self._lock = threading.Lock()

    # --- output -------------------------------------------------------------------------------

    def write(self, name: str, line: str) -> None:
        with self._lock:
            self.output.write(f"{name:<10}| {line}\n")
            self.output.flush()

    def say(self, line: str) -> None:
        self.write("serve", line)

    def request_stop(self) -> None:
        """First call: stop gracefully. Second call: stop now (SIGKILL without grace)."""
        if self.stop_requested.is_set():
            self.hurry.set()
        self.stop_requested.set()

    # --- start --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every child, tier by tier, waiting for each tier to be ready."""
        for tier in sorted({spec.tier for spec in self.specs}):
            if self.stop_requested.is_set():
                return
            started = [self._start(spec) for spec in self.specs if spec.tier == tier]
            for child in started:
                self._wait_ready(child)

    def _start(self, spec: ChildSpec) -> Child:
        child = Child(spec, self.write)
        child.start(self.clock())
        self.children.append(child)
        return child

    def _wait_ready(self, child: Child) -> None:
        deadline = self.clock() + child.spec.ready_timeout_s
        while not self.stop_requested.is_set():
            code = child.exit_code()
            if code is not None:
                raise SupervisorError(
                    f"{child.spec.name} exited with status {code} while starting; its last output:\n"
                    f"{child.last_output()}"
                )
            if child.spec.ready is None or child.spec.ready():
                return
            if self.clock() > deadline:
                raise SupervisorError(
                    f"{child.spec.name} was not ready after {child.spec.ready_timeout_s:g}s; its last output:\n"
                    f"{child.last_output()}"
                )
            time.sleep(0.1)

    # --- run ----------------------------------------------------------------------------------

    def run(self) -> None:
        """Watch the children until a stop is requested; raise ``SupervisorError`` on a crash loop."""
        while not self.stop_requested.wait(self.poll_s):
            self.check_children()

    def check_children(self) -> None:
        now = self.clock()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.start(now)
                    self.say(f"{child.spec.name} restarted (pid {child.pid})")
                continue
            code = child.exit_code()
            if code is not None:
                self._schedule_restart(child, code, now)

    def _schedule_restart(self, child: Child, code: int, now: float) -> None:
        if now - child.started_at >= self.policy.healthy_after_s:
            child.failures = 0
        child.failures += 1
        if child.failures > self.policy.max_failures:
            raise SupervisorError(
                f"{child.spec.name} died {child.failures} times in a row (last status {code}); "
                f"stopping everything. Its last output:\n{child.last_output()}"
            )
        delay = self.policy.delay(child.failures)
        child.restart_at = now + delay
        self.say(f"{child.spec.name} exited unexpectedly with status {code}; restarting in {delay:g}s")

    # --- stop ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every child, last tier first; nothing started here outlives this call."""
        for tier in sorted({child.spec.tier for child in self.children}, reverse=True):
            self._stop_tier([child for child in self.children if child.spec.tier == tier])

    def _stop_tier(self, children: list[Child]) -> None:
        live = [child for child in children if child.running()]
        seen: list[psutil.Process] = [p for child in live for p in child.descendants()]
        for child in live:
            child.signal_group(signal.SIGTERM)
        grace = 0.0 if self.hurry.is_set() else max((child.spec.stop_timeout_s for child in live), default=0.0)
        deadline = self.clock() + grace
        while any(child.running() for child in live) and self.clock() < deadline and not self.hurry.is_set():
            seen += [p for child in live for p in child.descendants()]
            time.sleep(0.05)
        for child in live:
            if child.running():
                self.say(f"{child.spec.name} did not stop within {grace:g}s; killing it")
            child.signal_group(signal.SIGKILL)
            if child.process is not None:
                child.process.wait()
        _kill_survivors(seen)


def _kill_survivors(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(processes, timeout=5)

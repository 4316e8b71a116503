"""The supervisor with tiny real child processes: restarts, crash loops, start failures, and a
stop that leaves nothing behind, even a child that ignores SIGTERM or a grandchild in its own group."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from project.supervisor import ChildSpec, RestartPolicy, Supervisor, SupervisorError

FAST = RestartPolicy(base_s=0.01, max_s=0.05, max_failures=3, healthy_after_s=60)


def python(code: str, name: str = "child", **options) -> ChildSpec:
    return ChildSpec(name, (sys.executable, "-c", code), dict(os.environ), **options)


def after(gate: Path, code: str) -> str:
    """``code``, run once ``gate`` exists. ``Supervisor.start`` fails on a child that exits while it
    starts, so a child meant to die young waits for the test to create ``gate`` after ``start``: on a
    busy machine this process may only look at the child after a bare ``pass`` has long exited."""
    return f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.01)\n{code}"


def run_until(supervisor: Supervisor, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.check_children()
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_backoff_doubles_from_one_second_up_to_thirty():
    policy = RestartPolicy()

    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_child_that_dies_is_started_again_with_its_output_relayed(tmp_path):
    out = io.StringIO()
    gate = tmp_path / "go"
    supervisor = Supervisor(
        [python(after(gate, "print('hello', flush=True)"), name="greeter")], output=out, policy=FAST
    )
    supervisor.start()
    gate.touch()
    first = supervisor.children[0].pid
    try:
        run_until(supervisor, lambda: supervisor.children[0].pid != first)
    finally:
        supervisor.stop()

    assert "greeter   | hello" in out.getvalue()
    assert "greeter exited unexpectedly with status 0; restarting in" in out.getvalue()


def test_a_child_that_keeps_dying_stops_everything_with_its_last_output(tmp_path):
    gate = tmp_path / "go"
    supervisor = Supervisor(
        [python(after(gate, "print('broken config', flush=True); raise SystemExit(3)"))],
        output=io.StringIO(),
        policy=FAST,
    )
    supervisor.start()
    gate.touch()

    with pytest.raises(SupervisorError, match=r"child died 4 times in a row \(last status 3\)") as stopped:
        run_until(supervisor, lambda: False)
    supervisor.stop()

    assert "broken config" in str(stopped.value)


def test_failures_are_forgiven_once_a_child_stayed_up_long_enough(tmp_path):
    now = [0.0]
    gate = tmp_path / "go"
    policy = RestartPolicy(base_s=0.0, max_failures=1, healthy_after_s=60)
    supervisor = Supervisor([python(after(gate, "pass"))], output=io.StringIO(), policy=policy, clock=lambda: now[0])
    supervisor.start()
    gate.touch()
    child = supervisor.children[0]
    try:
        for _ in range(3):
            child.process.wait()
            now[0] += 61
            supervisor.check_children()  # noticed as dead: one failure, forgiven the one before
            supervisor.check_children()  # restarted
            assert child.failures == 1
    finally:
        supervisor.stop()


def test_a_child_that_exits_before_it_is_ready_fails_the_start_with_its_output():
    spec = python("print('port 8000 is taken', flush=True); raise SystemExit(1)", name="web", ready=lambda: False)
    supervisor = Supervisor([spec], output=io.StringIO())

    with pytest.raises(SupervisorError, match=r"web exited with status 1 while starting") as failed:
        supervisor.start()
    supervisor.stop()

    assert "port 8000 is taken" in str(failed.value)


def test_a_child_that_is_never_ready_fails_the_start():
    spec = python("import time; time.sleep(30)", name="slow", ready=lambda: False, ready_timeout_s=0.3)
    supervisor = Supervisor([spec], output=io.StringIO())

    with pytest.raises(SupervisorError, match=r"slow was not ready after 0.3s"):
        supervisor.start()
    supervisor.stop()

    assert not supervisor.children[0].running()


STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c",
    "import os, signal, time; os.setpgrp(); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
print(grandchild.pid, flush=True)
time.sleep(60)
"""


def test_stop_kills_a_child_that_ignores_sigterm_and_its_grandchild_in_another_group():
    out = io.StringIO()
    supervisor = Supervisor([python(STUBBORN, name="stubborn", stop_timeout_s=0.5)], output=out)
    supervisor.start()
    child = supervisor.children[0]
    deadline = time.monotonic() + 10
    while "stubborn  | " not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    grandchild = psutil.Process(int(out.getvalue().split("stubborn  | ")[1].split()[0]))

    started = time.monotonic()
    supervisor.stop()

    assert time.monotonic() - started < 5
    assert not child.running()
    assert not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE
    assert "did not stop within 0.5s; killing it" in out.getvalue()


def test_children_stop_in_reverse_order_of_their_tiers():
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('bye', flush=True), sys.exit(0)))\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    out = io.StringIO()
    specs = [python(code, name="first", tier=0), python(code, name="second", tier=1)]
    supervisor = Supervisor(specs, output=out)
    supervisor.start()
    deadline = time.monotonic() + 10
    while out.getvalue().count("| up") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)

    supervisor.stop()
    deadline = time.monotonic() + 10  # the relay threads write the last lines after the children exit
    while out.getvalue().count("| bye") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)

    lines = [line for line in out.getvalue().splitlines() if line.endswith("| bye")]
    assert [line.split()[0] for line in lines] == ["second", "first"]

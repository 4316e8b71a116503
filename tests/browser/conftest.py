"""Browser tests: Debian's Chromium driven by Playwright against a live server process.

One daphne process serves every browser test (starting one costs seconds); each test's
rows are flushed after it and the server reads the database afresh. Its registry snapshot,
though, lives for a few seconds in its memory, so every test that needs models registers the
same ones (``ui_model``), and ``serve_models`` waits until the server routes them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.test import Client

from orchestration.access.keys import api_key_create
from orchestration.models import Fallback, LanguageModel, Provider, RequestLog
from tests.support import ROOT, ManagedProcess, start_web, start_worker

# Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make
# between browser steps are ordinary blocking calls, which Django would otherwise refuse.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "screenshots"
PASSWORD = "correct-horse-battery"
MODEL = "ui-sim"
BACKUP = "ui-sim-backup"


# Package scope, not session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and every async test after the browser tests would fail on it.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield instance
        instance.close()


# Every browser context a test opened, closed when it ends: a tab left open would keep following
# its reply's stream on the shared server, and ids start again after each test's database flush,
# so it would count as watching the next test's reply with the same id.
_opened: list[Any] = []


@pytest.fixture(autouse=True)
def _close_opened_tabs() -> Iterator[None]:
    yield
    while _opened:
        with contextlib.suppress(Exception):  # closed by the test already
            _opened.pop().close()


def new_page(browser: Any, width: int = 1280, height: int = 800) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height})
    _opened.append(context)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.errors = []  # uncaught exceptions of the page's scripts; the `page` fixture fails on any
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    return tab


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    tab = new_page(browser)
    yield tab
    errors = tab.errors
    tab.context.close()
    assert not errors, f"the page raised: {errors}"


# The server and the worker stop with the browser tests too, not at the end of the whole run.
@pytest.fixture(scope="package")
def _shared_worker(django_db_setup: None, _simulator_process: ManagedProcess) -> Iterator[ManagedProcess]:
    process = start_worker("agents")
    yield process
    process.stop()


@pytest.fixture(scope="package")
def _shared_web(
    django_db_setup: None, django_db_blocker: Any, _simulator_process: ManagedProcess, _shared_worker: ManagedProcess
) -> Iterator[ManagedProcess]:
    # The worker is started first, without waiting for it: it boots while the first tests run.
    with django_db_blocker.unblock():
        # A short grace period: a reply whose tab closed is stopped in seconds, not 30 s.
        process = start_web(SWITCHYARD_SIMULATOR_URL=_simulator_process.url, SWITCHYARD_CHAT_GRACE_S="4")
    yield process
    process.stop()


@pytest.fixture
def live_web(_shared_web: ManagedProcess, transactional_db: None, simulator: Any) -> Iterator[ManagedProcess]:
    """The session's one server, on this test's (flushed afterwards) database and Redis."""
    if _shared_web.process is not None and _shared_web.process.poll() is not None:
        raise RuntimeError(f"the shared web server exited:\n{_shared_web.log_text()[-2000:]}")
    yield _shared_web
    if any(model["requests"] for model in simulator.stats()["models"].values()):
        request_log_settled()


def request_log_settled(*, steady_s: float = 0.7, timeout: float = 10.0) -> None:
    """Wait until the server has written the request log of the test's model calls (it writes
    in batches every half second): a write racing the flush of the database deadlocks on
    PostgreSQL, or lands in the next test."""
    deadline = time.monotonic() + timeout
    count, since = RequestLog.objects.count(), time.monotonic()
    while time.monotonic() - since < steady_s and time.monotonic() < deadline:
        time.sleep(0.05)
        now = RequestLog.objects.count()
        if now != count:
            count, since = now, time.monotonic()


@pytest.fixture
def worker(_shared_worker: ManagedProcess, live_web: ManagedProcess) -> ManagedProcess:
    """The session's RQ worker on the ``agents`` queue."""
    if _shared_worker.process is not None and _shared_worker.process.poll() is not None:
        raise RuntimeError(f"the worker exited:\n{_shared_worker.log_text()[-2000:]}")
    return _shared_worker


@pytest.fixture(scope="session")
def password_hash() -> str:
    """PASSWORD hashed once: a hash costs most of a second, on purpose."""
    return make_password(PASSWORD)


@pytest.fixture
def person(django_user_model: Any, password_hash: str) -> Any:
    return django_user_model.objects.create(username="carol", email="carol@example.com", password=password_hash)


@pytest.fixture
def operator(django_user_model: Any, password_hash: str) -> Any:
    return django_user_model.objects.create(
        username="olive", email="olive@example.com", password=password_hash, is_staff=True, is_superuser=True
    )


def simulated_model(name: str, simulator: Any, **fields: Any) -> LanguageModel:
    """A model on a provider of its own, served by the simulator under the upstream name ``name``."""
    provider = Provider.objects.create(
        name=f"{name}-provider", kind=Provider.Kind.SIMULATOR, base_url=f"{simulator.url}/v1", max_retries=0
    )
    fields = {"input_per_mtok": 1, "output_per_mtok": 2, "cache_exact_enabled": False, **fields}
    return LanguageModel.objects.create(
        name=name, provider=provider, upstream=name, capabilities=["chat", "tools"], **fields
    )


def fallback_add(model: LanguageModel, target: LanguageModel) -> None:
    Fallback.objects.create(model=model, target=target, position=model.fallbacks.count())


ServeModels = Callable[..., None]


@pytest.fixture
def serve_models(live_web: ManagedProcess, django_user_model: Any) -> ServeModels:
    """``serve_models("a", "b")`` returns once the live server routes those models."""

    def wait(*names: str, timeout: float = 10.0) -> None:
        probe = django_user_model.objects.create_user(f"probe-{time.monotonic_ns()}")
        _, secret = api_key_create(user=probe, name="probe")
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=live_web.url, headers={"Authorization": f"Bearer {secret}"}) as client:
            while True:
                served = {model["id"] for model in client.get("/v1/models").json()["data"]}
                if set(names) <= served:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"the server does not route {set(names) - served} after {timeout}s")
                time.sleep(0.25)

    return wait


@pytest.fixture
def ui_model(simulator: Any, serve_models: ServeModels) -> LanguageModel:
    """``ui-sim``, answered by the simulator, with ``ui-sim-backup`` (another provider) as its
    fallback: it answers only when ``ui-sim`` fails."""
    model = simulated_model(MODEL, simulator)
    fallback_add(model, simulated_model(BACKUP, simulator))
    serve_models(MODEL, BACKUP)
    return model


def log_in(page: Any, base_url: str, username: str = "carol") -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")


def sign_in(page: Any, base_url: str, user: Any, path: str = "/") -> None:
    """Open ``path`` signed in as ``user`` without the login form (its password hash is slow)."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": base_url}])
    page.goto(f"{base_url}{path}")


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # a sticky header would otherwise land mid-picture
    page.screenshot(path=str(path), full_page=full_page)
    return path

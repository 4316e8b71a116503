"""The served OpenAPI document against the server that serves it (schemathesis, with a valid key):
no answer is a 5xx, and every status an operation answers with is one its document names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestration.access.keys import api_key_create
from orchestration.models import LanguageModel, Provider
from orchestration.registry import snapshot_invalidate
from tests.support import ROOT, child_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

# Bounded, so CI stays quick: enough to find an undocumented status or a crash in every operation.
MAX_EXAMPLES = int(os.environ.get("SWITCHYARD_SCHEMATHESIS_EXAMPLES", "12"))


def schemathesis() -> str:
    """The ``st`` of this environment (schemathesis is a dev dependency: ``make install``)."""
    return str(Path(sys.executable).with_name("st"))


def test_every_operation_answers_only_documented_statuses_and_never_a_5xx(
    live_web: Any, alice: Any, simulator: Any, tmp_path: Path
) -> None:
    provider = Provider.objects.create(name="sim", kind=Provider.Kind.SIMULATOR, base_url=simulator.url + "/v1")
    LanguageModel.objects.create(
        name="gpt-sim", provider=provider, upstream="gpt-sim", capabilities=["chat", "tools"], max_output_tokens=256
    )
    snapshot_invalidate()
    secret = api_key_create(user=alice)[1]
    report = ROOT / "var" / "schemathesis-report.txt"
    done = subprocess.run(
        [
            schemathesis(),
            "run",
            f"{live_web.url}/api/schema/",
            "--header",
            f"Authorization: Bearer {secret}",
            "--checks",
            os.environ.get(
                "SWITCHYARD_SCHEMATHESIS_CHECKS", "not_a_server_error,status_code_conformance,content_type_conformance"
            ),
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
        ],
        cwd=ROOT,
        env=child_env(SCHEMATHESIS_HOOKS=""),
        capture_output=True,
        text=True,
        timeout=600,
    )
    report.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]

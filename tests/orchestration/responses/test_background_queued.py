"""Background responses that no worker takes: no test here may use a worker (``worker`` or
``workers``). The module's worker of test_background.py lives until that module's last test, so a
test there could not know that its queued response stays queued: the worker took it now and then
under load, and its stream then began with the events of the run."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import pytest

from orchestration.models import StoredResponse
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    make_key,
    sim_models,
)
from tests.orchestration.responses.test_background import client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def test_a_queued_background_response_can_be_cancelled_before_a_worker_takes_it(sim_models, make_key, live_web) -> None:  # type: ignore[no-untyped-def]
    sdk = client(live_web, make_key())
    created = sdk.responses.create(model="gpt-sim", input="Hi.", background=True)
    assert sdk.responses.cancel(created.id).status == "cancelled"
    assert list(sdk.responses.retrieve(created.id, stream=True)) == []  # its stream is over
    assert StoredResponse.objects.get(pk=created.id).attempts == 0  # no worker ever claimed it

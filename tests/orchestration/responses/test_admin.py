"""Stored responses in the Django admin: listed for staff, never added or edited there."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.urls import reverse

from orchestration.models import StoredResponse

pytestmark = pytest.mark.django_db


def test_stored_responses_are_listed_read_only(admin_client: Any, alice: Any) -> None:
    row = StoredResponse.objects.create(
        id="resp_0123", owner=alice, model="gpt-sim", status="completed", created_at=datetime.now(UTC)
    )
    listing = admin_client.get(reverse("admin:orchestration_storedresponse_changelist"))
    assert listing.status_code == 200 and b"resp_0123" in listing.content
    assert admin_client.get(reverse("admin:orchestration_storedresponse_add")).status_code == 403
    detail = admin_client.get(reverse("admin:orchestration_storedresponse_change", args=[row.pk]))
    assert detail.status_code == 200 and b'name="_save"' not in detail.content

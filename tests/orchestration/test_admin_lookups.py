"""A change list's query string never fails as a 500 (orchestration/admin/changelist.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

LISTS = [
    "/admin/orchestration/provider/",
    "/admin/orchestration/languagemodel/",
    "/admin/chat/conversation/",
    "/admin/orchestration/requestlog/",
]


@pytest.fixture
def staff(admin_user: Any) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("year", ["99999", "0", "-5"])
@pytest.mark.parametrize("url", LISTS)
def test_a_year_no_date_can_have_is_the_admins_invalid_lookup_answer(staff: Client, url: str, year: str) -> None:
    response = staff.get(f"{url}?created_at__year={year}")

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_djangos_own_user_list_answers_it_the_same_way(staff: Client) -> None:
    assert staff.get("/admin/auth/user/?date_joined__year=99999").status_code == 302


def test_a_year_in_range_still_filters(staff: Client) -> None:
    assert staff.get("/admin/orchestration/provider/?created_at__year=2026").status_code == 200

"""Settings read once until one changes (orchestration/conf.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.test import override_settings

from orchestration.conf import setting, switchyard_setting


def test_a_setting_read_once_follows_every_change() -> None:
    before = setting("DATA_UPLOAD_MAX_MEMORY_SIZE")
    assert before == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1234):
        assert setting("DATA_UPLOAD_MAX_MEMORY_SIZE") == 1234
    assert setting("DATA_UPLOAD_MAX_MEMORY_SIZE") == before


def test_the_fixture_changes_reach_it_too(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["example.test"]
    assert setting("ALLOWED_HOSTS") == ["example.test"]
    settings.SWITCHYARD = {**settings.SWITCHYARD, "CHAT_GRACE_S": 7.5}
    assert switchyard_setting("CHAT_GRACE_S") == 7.5


def test_a_change_inside_the_switchyard_dict_is_seen_at_once(settings: Any) -> None:
    settings.SWITCHYARD = dict(settings.SWITCHYARD)
    assert switchyard_setting("NOT_A_SETTING", "default") == "default"
    settings.SWITCHYARD["NOT_A_SETTING"] = "set"
    assert switchyard_setting("NOT_A_SETTING", "default") == "set"

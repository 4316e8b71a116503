"""Settings refuse bad environment values, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT


def django_set_up(statement: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """A fresh process that sets Django up with ``env`` over this one's (less the variables the
    settings must be given), then runs ``statement``."""
    environment = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "ALLOWED_HOSTS"}
    }
    environment.update(env)
    code = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='project.settings'; django.setup(); " + statement
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def settings_error(**env: str) -> str:
    result = django_set_up(**env)
    assert result.returncode != 0, "settings accepted a bad value"
    return result.stderr.strip().splitlines()[-1]


def settings_printed(statement: str, **env: str) -> str:
    """What ``statement`` prints once the settings took ``env``."""
    result = django_set_up(statement, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_secret_key_is_required_without_debug():
    assert "SECRET_KEY" in settings_error(DEBUG="0")


def test_allowed_hosts_are_required_without_debug():
    environment = {"SECRET_KEY": "x", "DEBUG": "0", "ALLOWED_HOSTS": ""}
    assert "ALLOWED_HOSTS" in settings_error(**environment)


def test_an_empty_allowed_hosts_with_debug_means_the_local_names():
    printed = settings_printed(
        "from django.conf import settings; print(','.join(settings.ALLOWED_HOSTS))", DEBUG="1", ALLOWED_HOSTS=""
    )
    assert printed == "127.0.0.1,localhost,[::1]"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "mysql://root@localhost/db"),
        ("REDIS_URL", "http://localhost:6379"),
        ("SWITCHYARD_DEADLINE_COMPLETION_S", "soon"),
        ("SWITCHYARD_DEADLINE_CHAT_S", "-5"),
        ("LOG_LEVEL", "loud"),
        ("SWITCHYARD_SEMANTIC_EMBEDDER", "openai"),
        ("SWITCHYARD_SIMULATOR_URL", "127.0.0.1:9100"),
        ("SWITCHYARD_SIMULATOR_URL", "http://127.0.0.1:port"),
        ("REDIS_URL", "redis://localhost:port/0"),
        ("SWITCHYARD_VAR_DIR", "/proc/switchyard"),
    ],
)
def test_a_bad_value_names_the_variable(name, value):
    message = settings_error(SECRET_KEY="x", ALLOWED_HOSTS="localhost", **{name: value})
    assert name in message


def test_the_log_level_is_read_in_any_case():
    printed = settings_printed(
        "import logging; print(logging.getLogger().level)",
        SECRET_KEY="x",
        ALLOWED_HOSTS="localhost",
        LOG_LEVEL="warning",
    )
    assert printed == "30"

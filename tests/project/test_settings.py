"""Settings refuse bad environment values, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT


def settings_error(**env: str) -> str:
    environment = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "ALLOWED_HOSTS"}
    }
    environment.update(env)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='project.settings'; django.setup()",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0, "settings accepted a bad value"
    return result.stderr.strip().splitlines()[-1]


def test_secret_key_is_required_without_debug():
    assert "SECRET_KEY" in settings_error(DEBUG="0")


def test_allowed_hosts_are_required_without_debug():
    environment = {"SECRET_KEY": "x", "DEBUG": "0", "ALLOWED_HOSTS": ""}
    assert "ALLOWED_HOSTS" in settings_error(**environment)


def test_an_empty_allowed_hosts_with_debug_means_the_local_names():
    environment = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "ALLOWED_HOSTS"}
    }
    environment.update(DEBUG="1", ALLOWED_HOSTS="")
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='project.settings'; django.setup(); "
        "from django.conf import settings; print(','.join(settings.ALLOWED_HOSTS))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "127.0.0.1,localhost,[::1]"


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
    environment = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "ALLOWED_HOSTS"}
    }
    environment.update(SECRET_KEY="x", ALLOWED_HOSTS="localhost", LOG_LEVEL="warning")
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='project.settings'; django.setup(); "
        "import logging; print(logging.getLogger().level)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "30"

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from project.stack import StackOptions, admin_user_ensure, http_timeout_s, probe_headers, stack_specs
from project.valkey import ValkeySocketError, valkey_command


def test_the_web_server_outlasts_every_deadline_the_app_enforces(settings):
    settings.SWITCHYARD = {**settings.SWITCHYARD, "DEADLINE_AGENT_S": 300.0, "DEADLINE_CHAT_S": 60.0}

    assert http_timeout_s() > 300


def test_the_stack_has_valkey_simulator_n_workers_and_web_in_start_order(settings, tmp_path):
    settings.REDIS_EMBEDDED = True
    settings.REDIS_SOCKET = tmp_path / "v.sock"
    settings.VAR_DIR = tmp_path
    settings.SWITCHYARD = {**settings.SWITCHYARD, "SIMULATOR_URL": "http://127.0.0.1:9555"}

    specs = stack_specs(StackOptions(port=8123, workers=3))

    assert [spec.name for spec in specs] == ["valkey", "simulator", "worker-1", "worker-2", "worker-3", "web"]
    assert [spec.tier for spec in specs] == sorted(spec.tier for spec in specs)
    assert "9555" in specs[1].argv
    assert all(spec.env["SWITCHYARD_SIMULATOR_URL"] == "http://127.0.0.1:9555" for spec in specs)
    assert all(spec.env["REDIS_URL"] == settings.REDIS_URL for spec in specs)
    assert (tmp_path / "valkey" / "valkey.conf").read_text().count(str(tmp_path / "v.sock")) == 1


def test_with_redis_url_and_no_simulator_only_workers_and_web_run(settings):
    settings.REDIS_EMBEDDED = False

    specs = stack_specs(StackOptions(workers=1, simulator=False))

    assert [spec.name for spec in specs] == ["worker-1", "web"]


def test_a_socket_path_too_long_for_unix_sockets_is_refused_naming_the_variable(tmp_path):
    with pytest.raises(ValkeySocketError, match="SWITCHYARD_VAR_DIR"):
        valkey_command(socket_path=tmp_path / ("x" * 120) / "valkey.sock", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        (["127.0.0.1", "localhost"], None),
        (["*"], None),
        (["switchyard.example.com", "api.example.com"], "switchyard.example.com"),
        ([".example.com"], "example.com"),
    ],
)
def test_the_readiness_probe_names_a_host_django_accepts(settings, allowed, host):
    settings.ALLOWED_HOSTS = allowed

    assert probe_headers().get("Host") == host


@pytest.mark.django_db
def test_the_first_admin_is_created_once_and_only_its_hash_is_stored():
    password = admin_user_ensure()

    admin = get_user_model().objects.get(username="admin")
    assert password and len(password) >= 16
    assert admin.is_superuser and admin.check_password(password)
    assert password not in admin.password
    assert admin_user_ensure() is None


@pytest.mark.django_db
def test_no_admin_is_created_when_a_superuser_exists(django_user_model):
    django_user_model.objects.create_superuser("root", "", "root-password-1")

    assert admin_user_ensure() is None
    assert not django_user_model.objects.filter(username="admin").exists()

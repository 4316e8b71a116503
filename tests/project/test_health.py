from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_healthz_answers_with_a_request_id(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["X-Request-ID"].startswith("req_")


@pytest.mark.django_db
def test_a_sane_client_request_id_is_echoed(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"


@pytest.mark.django_db
def test_an_unsafe_client_request_id_is_replaced(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\twith spaces")
    assert response["X-Request-ID"].startswith("req_")


@pytest.mark.django_db
def test_readyz_reports_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": True, "redis": True}


@pytest.mark.django_db
def test_readyz_is_503_when_redis_does_not_answer(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] is False

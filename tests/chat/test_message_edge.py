"""Posting a message against a live daphne process: an API client's post is served as raw ASGI
before the edge (``chat.apis.MessagePostRoute``) and answers as the full stack does; the list and
browser sessions keep the full stack."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.test import Client

from chat import streams
from chat.models import Conversation, Message
from tests.chat.conftest import MODEL, api

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def full_stack_ran(response: httpx.Response) -> bool:
    """Whether Django's full middleware stack answered (its XFrameOptionsMiddleware marks every response)."""
    return "X-Frame-Options" in response.headers


def conversation_of(user: Any) -> Conversation:
    return Conversation.objects.create(owner=user, model=MODEL)


def test_an_api_client_posts_a_message_on_the_lean_path(shared_web, alice, alice_key) -> None:
    conversation = conversation_of(alice)
    url = f"/api/v1/conversations/{conversation.pk}/messages"
    alice_api = api(shared_web.url, alice_key)

    posted = alice_api.post(url, json={"content": "Hello there"})
    assert posted.status_code == 201 and not full_stack_ran(posted), posted.text
    body = posted.json()
    assert set(body) == {"user_message", "assistant_message", "stream_url"}
    assert body["user_message"]["content"] == "Hello there" and body["user_message"]["conversation"] == conversation.pk
    assert body["assistant_message"]["status"] == "streaming" and body["assistant_message"]["model"] == MODEL
    assert body["stream_url"] == f"/api/v1/messages/{body['assistant_message']['id']}/stream"
    assert posted.headers["X-Request-ID"].startswith("req_") and posted.headers["Content-Type"] == "application/json"
    assert int(posted.headers["Content-Length"]) == len(posted.content)
    reply = Message.objects.get(pk=body["assistant_message"]["id"])
    assert reply.conversation_id == conversation.pk and reply.role == "assistant"

    with alice_api.stream("GET", body["stream_url"]) as stream:
        assert stream.status_code == 200 and "event: done" in stream.read().decode()

    listed = alice_api.get(url)  # the list is not a post: the full stack serves it
    assert listed.status_code == 200 and full_stack_ran(listed)
    assert [m["id"] for m in listed.json()["results"]] == [body["user_message"]["id"], reply.pk]


def bad_posts(alice: Any, bob: Any) -> list[tuple[str, str, str]]:
    """(url, raw body, content type) of posts every path must refuse alike."""
    mine = f"/api/v1/conversations/{conversation_of(alice).pk}/messages"
    busy = conversation_of(alice)
    streaming = Message.objects.create(conversation=busy, role="assistant", status="streaming")
    streams.producer_claim(streaming.pk)
    return [
        (mine, '{"content": ""}', "application/json"),
        (mine, '{"content": "   \\n "}', "application/json"),
        (mine, '{"content": "' + "x" * 32_001 + '"}', "application/json"),
        (mine, '{"content": ["hi"], "model": 3}', "application/json"),
        (mine, '{"content": "hi", "model": "no-such-model"}', "application/json"),
        (mine, '["not", "an", "object"]', "application/json"),
        (mine, "{nope", "application/json"),
        (mine, "", "application/json"),
        (mine, '{"content": "' + "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + '"}', "application/json"),
        (f"/api/v1/conversations/{conversation_of(bob).pk}/messages", '{"content": "hi"}', "application/json"),
        ("/api/v1/conversations/999999/messages", '{"content": "hi"}', "application/json"),
        # Past the id column's range: no row has it, and the database driver refuses the number.
        ("/api/v1/conversations/9223372036854775808/messages", '{"content": "hi"}', "application/json"),
        (f"/api/v1/conversations/{2**70}/messages", '{"content": "hi"}', "application/json"),
        (f"/api/v1/conversations/{busy.pk}/messages", '{"content": "hi"}', "application/json"),
    ]


def test_bad_posts_get_the_same_errors_as_from_the_full_stack(shared_web, alice, bob, alice_key) -> None:
    lean = api(shared_web.url, alice_key)
    full = Client(HTTP_AUTHORIZATION=f"Bearer {alice_key}")  # in-process: Django's full stack
    for url, raw, content_type in bad_posts(alice, bob):
        answered = lean.post(url, content=raw, headers={"Content-Type": content_type})
        expected = full.post(url, raw, content_type=content_type)

        assert answered.status_code == expected.status_code and not full_stack_ran(answered), (raw[:40], answered.text)
        error, expected_error = answered.json()["error"], expected.json()["error"]
        assert {**error, "request_id": ""} == {**expected_error, "request_id": ""}, raw[:40]
        assert error["request_id"] == answered.headers["X-Request-ID"]
    assert Message.objects.filter(role="user").count() == 0


def test_a_key_that_does_not_exist_is_401_on_the_lean_path(shared_web, alice, chat_model) -> None:
    url = f"/api/v1/conversations/{conversation_of(alice).pk}/messages"
    for headers in ({"Authorization": "Bearer sy-not-a-key"}, {"x-api-key": "sy-not-a-key"}):
        refused = httpx.post(shared_web.url + url, json={"content": "hi"}, headers=headers)
        assert refused.status_code == 401 and not full_stack_ran(refused)
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="switchyard"'


def test_a_browser_session_keeps_the_full_stack_with_its_csrf_check(shared_web, alice, chat_model) -> None:
    url = f"/api/v1/conversations/{conversation_of(alice).pk}/messages"
    browser = Client()
    browser.force_login(alice)
    session = httpx.Client(base_url=shared_web.url, cookies={"sessionid": browser.cookies["sessionid"].value})

    without_token = session.post(url, json={"content": "hi"})
    assert without_token.status_code == 403 and full_stack_ran(without_token)
    assert without_token.json()["error"]["code"] == "csrf_failed"
    assert ".." not in without_token.json()["error"]["message"]  # Django's reason ends with its own period
    anonymous = httpx.post(shared_web.url + url, json={"content": "hi"})
    assert anonymous.status_code == 401 and full_stack_ran(anonymous)
    assert not Message.objects.exists()


def test_a_method_the_route_does_not_have_is_405_with_a_key_a_session_or_neither(shared_web, alice, alice_key) -> None:
    # The full stack's CSRF check took an API key's PUT for a browser's unprotected write (401).
    url = f"/api/v1/conversations/{conversation_of(alice).pk}/messages"
    browser = Client()
    browser.force_login(alice)
    callers = [
        api(shared_web.url, alice_key),
        httpx.Client(base_url=shared_web.url, cookies={"sessionid": browser.cookies["sessionid"].value}),
        httpx.Client(base_url=shared_web.url),
    ]
    for client in callers:
        for method in ("PUT", "PATCH", "DELETE", "PROPFIND"):
            answer = client.request(method, url, json={"content": "hi"})
            assert answer.status_code == 405, (method, answer.text)
            assert answer.json()["error"]["code"] == "method_not_allowed"
            assert answer.headers["Allow"] == "GET, POST, HEAD, OPTIONS" and answer.headers["X-Request-ID"]
        client.close()
    assert not Message.objects.exists()

    reply = Message.objects.create(conversation=conversation_of(alice), role="assistant", status="complete")
    with api(shared_web.url, alice_key) as client:
        for method in ("POST", "HEAD", "DELETE"):  # a stream is read with GET
            answer = client.request(method, f"/api/v1/messages/{reply.pk}/stream")
            assert answer.status_code == 405 and answer.headers["Allow"] == "GET", method


async def edge_stand_in(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 299 with the path: the requests ``MessagePostRoute`` hands on to the edge."""
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", [(b"authorization", b"Bearer sy-any"), (b"host", b"localhost")]),  # the list
        ("POST", [(b"cookie", b"sessionid=x"), (b"host", b"localhost")]),  # a browser: CSRF, sessions
        ("POST", [(b"authorization", b"Basic eDp5"), (b"host", b"localhost")]),  # presents no key
        ("POST", [(b"authorization", b"Bearer sy-any"), (b"host", b"evil.example")]),  # Django answers the Host
        ("POST", [(b"x-api-key", b"sy-any")]),  # no Host at all
    ],
)
async def test_the_raw_post_hands_what_it_does_not_serve_to_the_edge(method, headers) -> None:
    from channels.testing import HttpCommunicator

    from chat.apis import MessagePostRoute

    path = "/api/v1/conversations/7/messages"
    scope_extra = {"url_route": {"args": (), "kwargs": {"conversation_id": 7}}}
    communicator = HttpCommunicator(MessagePostRoute(edge_stand_in), method, path, b"{}", headers)
    communicator.scope.update(scope_extra)
    answered = await communicator.get_response()
    assert answered["status"] == 299 and answered["body"] == path.encode()


async def test_the_raw_post_answers_a_bad_key_itself_in_the_one_shape() -> None:
    from channels.testing import HttpCommunicator

    from chat.apis import MessagePostRoute

    headers = [(b"authorization", b"Bearer sy-not-a-key"), (b"host", b"localhost"), (b"x-request-id", b"mine-1")]
    communicator = HttpCommunicator(
        MessagePostRoute(edge_stand_in), "POST", "/api/v1/conversations/7/messages", b"{}", headers
    )
    communicator.scope["url_route"] = {"args": (), "kwargs": {"conversation_id": 7}}
    answered = await communicator.get_response()
    assert answered["status"] == 401
    sent = {name.lower(): value for name, value in answered["headers"]}
    assert sent[b"x-request-id"] == b"mine-1" and sent[b"content-type"] == b"application/json"
    assert sent[b"www-authenticate"] == b'Bearer realm="switchyard"'
    assert int(sent[b"content-length"]) == len(answered["body"])
    error = json.loads(answered["body"])["error"]
    assert error["code"] == "invalid_api_key" and error["request_id"] == "mine-1"


async def test_the_raw_post_stops_reading_a_chunked_body_past_the_limit() -> None:
    from channels.testing import ApplicationCommunicator

    from chat.apis import MessagePostRoute

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/conversations/7/messages",
        "headers": [(b"authorization", b"Bearer sy-not-a-key"), (b"host", b"localhost")],
        "url_route": {"args": (), "kwargs": {"conversation_id": 7}},
    }
    communicator = ApplicationCommunicator(MessagePostRoute(edge_stand_in), scope)
    chunk = b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    await communicator.send_input({"type": "http.request", "body": chunk, "more_body": True})
    # No more is sent and the body never ends: the answer comes anyway, from what was read.
    started = await communicator.receive_output(5)
    assert started["type"] == "http.response.start" and started["status"] in (401, 413)
    await communicator.receive_output(5)
    await communicator.wait(5)

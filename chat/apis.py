"""The chat API: sync DRF views for conversations (they answer in milliseconds), and the async
view that posts a message and starts its reply.

Streaming is not here: ``chat.consumers`` serves ``GET /api/v1/messages/{id}/stream``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.http.request import split_domain_port, validate_host
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors, services, statements
from chat.models import Conversation, Message
from chat.replies import reply_start
from chat.services import ReplyPlan
from orchestration.access.admission import Caller, caller_for_secret, caller_for_user, caller_for_user_sync
from orchestration.access.credentials import api_key_secret_from
from orchestration.conf import setting
from orchestration.database import database_call
from orchestration.errors import InvalidRequest, MethodNotAllowed, ServiceError, error_body, error_body_of
from orchestration.fields import TextField
from orchestration.http import asgi_json_send, body_too_large, door, json_body, request_id_of, validation_message
from orchestration.loops import PerLoop, detached
from orchestration.pagination import StrictLimitOffsetPagination, page_parameters
from orchestration.requestids import request_id_from
from orchestration.sse import json_compact
from orchestration.telemetry.logs import request_context_set
from orchestration.validation import json_document

logger = logging.getLogger(__name__)


def caller_of(request: Request) -> Caller:
    """The caller of a DRF request: the API key's (``request.auth``), else the signed-in person's."""
    if isinstance(request.auth, Caller):
        return request.auth
    return caller_for_user_sync(request.user)


def stream_url(message: Message) -> str:
    return f"/api/v1/messages/{message.pk}/stream"


class ConversationOutput(serializers.ModelSerializer):
    class Meta:
        model = Conversation
        fields = ["id", "title", "model", "system_prompt", "prompt_template", "temperature", "created_at", "updated_at"]


class MessageOutput(serializers.ModelSerializer):
    conversation = serializers.IntegerField(source="conversation_id")
    reply_to = serializers.IntegerField(source="reply_to_id", allow_null=True)
    edit_of = serializers.IntegerField(source="edit_of_id", allow_null=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation",
            "role",
            "content",
            "status",
            "model",
            "provider",
            "fallback_from",
            "simulated",
            "finish_reason",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "latency_ms",
            "ttft_ms",
            "error_code",
            "error_message",
            "reply_to",
            "edit_of",
            "request_id",
            "created_at",
            "finished_at",
        ]


_MESSAGE_OUTPUT = MessageOutput()
_COST_EXPONENT = Decimal(1).scaleb(-Message._meta.get_field("cost_usd").decimal_places)  # type: ignore[union-attr]
_COST_CONTEXT = Context(prec=Message._meta.get_field("cost_usd").max_digits)  # type: ignore[union-attr]


def message_output(message: Message) -> dict[str, Any]:
    """``MessageOutput(message).data`` written out: the serializer's per-field machinery cost more
    CPU than the rest of building a posted message's answer. ``tests/chat/test_apis.py`` holds the
    two equal, value for value and type for type."""
    m = message
    return {
        "id": _int(m.pk),
        "conversation": _int(m.conversation_id),  # type: ignore[attr-defined]
        "role": _str(m.role),
        "content": _str(m.content),
        "status": _str(m.status),
        "model": _str(m.model),
        "provider": _str(m.provider),
        "fallback_from": _str(m.fallback_from),
        "simulated": None if m.simulated is None else bool(m.simulated),
        "finish_reason": _str(m.finish_reason),
        "input_tokens": _int(m.input_tokens),
        "output_tokens": _int(m.output_tokens),
        "cost_usd": _decimal(m.cost_usd),
        "latency_ms": None if m.latency_ms is None else float(m.latency_ms),
        "ttft_ms": None if m.ttft_ms is None else float(m.ttft_ms),
        "error_code": _str(m.error_code),
        "error_message": _str(m.error_message),
        "reply_to": _int(m.reply_to_id),  # type: ignore[attr-defined]
        "edit_of": _int(m.edit_of_id),  # type: ignore[attr-defined]
        "request_id": _str(m.request_id),
        "created_at": _datetime(m.created_at),
        "finished_at": _datetime(m.finished_at),
    }


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _decimal(value: Any) -> str | None:
    """As DRF's ``DecimalField``: quantized to the model field's places, written in full."""
    if value is None:
        return None
    if not isinstance(value, Decimal):
        value = Decimal(str(value).strip())
    return f"{value.quantize(_COST_EXPONENT, context=_COST_CONTEXT):f}"


def _datetime(value: datetime | None) -> str | None:
    """As DRF's ``DateTimeField``: in the current time zone, ISO 8601, UTC written ``Z``."""
    if not value:
        return None
    zone = timezone.get_current_timezone()
    value = value.astimezone(zone) if timezone.is_aware(value) else timezone.make_aware(value, zone)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class ConversationInput(serializers.Serializer):
    title = TextField(max_length=200, required=False, allow_blank=True)
    model = TextField(max_length=128, required=False, allow_blank=True)
    system_prompt = TextField(max_length=services.MAX_CONTENT_CHARS, required=False, allow_blank=True)
    prompt_template = TextField(max_length=100, required=False, allow_blank=True)
    temperature = serializers.FloatField(min_value=0.0, max_value=2.0, required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("system_prompt") and attrs.get("prompt_template"):
            raise serializers.ValidationError("Give a system_prompt or a prompt_template, not both.")
        return attrs


class ConversationPageOutput(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ConversationOutput(many=True)


SEARCH_PARAMETER = OpenApiParameter(
    "search", str, description="Only conversations whose title or messages hold this text (case-insensitive)."
)
MAX_SEARCH_CHARS = 200


class ConversationsApi(APIView):
    @extend_schema(parameters=[*page_parameters(), SEARCH_PARAMETER], responses=ConversationPageOutput)
    def get(self, request: Request) -> Response:
        search = request.query_params.get("search", "")
        if len(search) > MAX_SEARCH_CHARS:
            raise InvalidRequest("search_too_long", f"A search holds at most {MAX_SEARCH_CHARS} characters.")
        paginator = StrictLimitOffsetPagination()
        conversations = selectors.conversations_of(owner_id=request.user.pk, search=search)
        page = paginator.paginate_queryset(conversations, request, view=self)
        return paginator.get_paginated_response(ConversationOutput(page, many=True).data)

    @extend_schema(request=ConversationInput, responses={201: ConversationOutput})
    def post(self, request: Request) -> Response:
        data = ConversationInput(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = services.conversation_create(
            owner=request.user, caller=caller_of(request), **data.validated_data
        )
        return Response(ConversationOutput(conversation).data, status=status.HTTP_201_CREATED)


class ConversationApi(APIView):
    @extend_schema(responses=ConversationOutput)
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = selectors.conversation_get(owner_id=request.user.pk, conversation_id=conversation_id)
        return Response(ConversationOutput(conversation).data)

    @extend_schema(request=ConversationInput, responses=ConversationOutput)
    def patch(self, request: Request, conversation_id: int) -> Response:
        conversation = selectors.conversation_get(owner_id=request.user.pk, conversation_id=conversation_id)
        data = ConversationInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        conversation = services.conversation_update(
            conversation=conversation, caller=caller_of(request), **data.validated_data
        )
        return Response(ConversationOutput(conversation).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, conversation_id: int) -> Response:
        conversation = selectors.conversation_get(owner_id=request.user.pk, conversation_id=conversation_id)
        services.conversation_delete(conversation=conversation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MessagePagination(StrictLimitOffsetPagination):
    # A conversation is read whole by its page; the limit only guards against huge ones.
    default_limit = 500
    max_limit = 1000


class MessageInput(serializers.Serializer):
    # Length is checked by the service, which answers 413 rather than 400 for too long.
    content = TextField(allow_blank=True, trim_whitespace=False)
    model = TextField(max_length=128, required=False, allow_blank=True)


NOT_A_STRING = "Not a valid string."
MODEL_MAX_CHARS = 128


def message_input(data: Any) -> tuple[str, str]:
    """``MessageInput(data=data)`` validated, written out: its content and model, or
    ``invalid_request`` worded as the serializer words it (unknown fields are ignored, as there).
    ``tests/chat/test_apis.py`` holds the two equal on every kind of bad input."""
    if data is None:
        raise InvalidRequest("invalid_request", "non_field_errors: No data provided")
    if not isinstance(data, Mapping):
        message = f"Invalid data. Expected a dictionary, but got {type(data).__name__}."
        raise InvalidRequest("invalid_request", f"non_field_errors: {message}")
    errors: dict[str, list[str]] = {}
    content = data.get("content", _MISSING)
    if content is _MISSING:
        errors["content"] = ["This field is required."]
    else:
        content = _char(errors, "content", content, trim=False, max_length=None)
    model = data.get("model", _MISSING)
    model = "" if model is _MISSING else _char(errors, "model", model, trim=True, max_length=MODEL_MAX_CHARS)
    if errors:
        raise InvalidRequest("invalid_request", validation_message(errors))
    return content, model


_MISSING = object()


def _char(errors: dict[str, list[str]], name: str, value: Any, *, trim: bool, max_length: int | None) -> str:
    """One blank-allowing ``TextField``: its checks in its order; a problem goes to ``errors``."""
    if value == "" or (trim and str(value).strip() == ""):
        return ""
    if value is None:
        errors[name] = ["This field may not be null."]
        return ""
    if not isinstance(value, str):  # as ``TextField``: a number is not taken for its text
        errors[name] = [NOT_A_STRING]
        return ""
    text = value.strip() if trim else value
    problems = []
    if max_length is not None and len(text) > max_length:
        problems.append(f"Ensure this field has no more than {max_length} characters.")
    if "\x00" in text:
        problems.append("Null characters are not allowed.")
    surrogate = next((ord(char) for char in text if 0xD800 <= ord(char) <= 0xDFFF), None)
    if surrogate is not None:
        problems.append(f"Surrogate characters are not allowed: U+{surrogate:X}.")
    if problems:
        errors[name] = problems
    return text


class MessagesApi(APIView):
    @extend_schema(responses=MessageOutput(many=True))
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = selectors.conversation_get(owner_id=request.user.pk, conversation_id=conversation_id)
        paginator = MessagePagination()
        page = paginator.paginate_queryset(selectors.messages_of(conversation=conversation), request, view=self)
        return paginator.get_paginated_response(MessageOutput(page, many=True).data)


# --- posting a message: an async view ----------------------------------------------------------
#
# The POST is the one write that starts a reply, and replies arrive in bursts. As a sync DRF view
# each POST held a thread and a database connection of its own while it waited, so a thousand at
# once meant a thousand of both (SQLite locked up, PostgreSQL ran out of connections). Here the
# request stays on the event loop; its database work (and its admission) is one call into the
# loop's thread pool; the reply starts on this very loop. An API client's post is served before
# the edge by ``MessagePostRoute`` (below), which shares the work of the post with this view; one
# it hands on reaches this view through the edge's lean handler (``api_key_fast_path`` in
# ``chat.urls``), and a browser's through Django's full stack, whose middleware has checked the
# session and the CSRF token.


async def conversation_messages(request: HttpRequest, conversation_id: int) -> HttpResponseBase:
    """``/api/v1/conversations/{id}/messages``: GET lists (DRF view), POST posts a message."""
    if request.method == "POST":
        return await message_create(request, conversation_id)
    response: HttpResponseBase = await sync_to_async(MessagesApi.as_view())(request, conversation_id=conversation_id)
    return response  # Django renders DRF's Response, as for any deferred-rendering response


@door("POST")
async def message_create(request: HttpRequest, conversation_id: int) -> HttpResponseBase:
    """Post a message, as the API key presented or the signed-in person."""
    caller = await _poster(request)
    body, plan = await post_batcher().post(
        caller, json_body(request, empty={}), conversation_id, request_id_of(request)
    )
    reply_start(plan)
    return JsonResponse(body, status=201, headers=plan.admission.headers())


async def _poster(request: HttpRequest) -> Caller:
    secret = api_key_secret_from(request.headers)
    if secret is not None:
        return await caller_for_secret(secret)
    return await caller_for_user(await request.auser())


PostAnswer = tuple[dict[str, Any], ReplyPlan]


@dataclass
class _Post:
    caller: Caller
    data: Any
    conversation_id: int
    request_id: str
    context: contextvars.Context
    answer: asyncio.Future[PostAnswer]


class PostBatcher:
    """The posts that reach an event loop in one turn go to the database thread together: one hop
    for all of them, their admissions in one Redis round trip and their producers' claims in
    another (``services.messages_post``), each post still decided, and failing, as if alone. A
    burst of posts paid a hop and two round trips each: together they were a third of a post's CPU."""

    def __init__(self) -> None:
        self._waiting: list[_Post] = []
        self._running: set[asyncio.Task[None]] = set()

    def post(self, caller: Caller, data: Any, conversation_id: int, request_id: str) -> asyncio.Future[PostAnswer]:
        """The answer of the post (its body and its reply's plan), or its error."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[PostAnswer] = loop.create_future()
        self._waiting.append(_Post(caller, data, conversation_id, request_id, contextvars.copy_context(), answer))
        if len(self._waiting) == 1:
            loop.call_soon(self._send)
        return answer

    def _send(self) -> None:
        batch, self._waiting = self._waiting, []
        detached(self._run(batch), self._running)

    async def _run(self, batch: list[_Post]) -> None:
        try:
            answers = await database_call(_message_posts_of)(batch)
        except Exception as error:
            answers = [error] * len(batch)
        for post, answer in zip(batch, answers, strict=True):
            if post.answer.done():  # its client left (Django cancels the view) while the batch was out
                if not isinstance(answer, Exception):
                    self._orphan_start(answer[1])
                continue
            if isinstance(answer, Exception):
                post.answer.set_exception(answer)
            else:
                post.answer.set_result(answer)

    @staticmethod
    def _orphan_start(plan: ReplyPlan) -> None:
        """Start the reply of a post made after its client left. Its rows are saved, its admission
        taken and its producer claimed: unstarted, the reply stayed streaming (the conversation
        409 to every post) and its reservation held until they lapsed. A post alone was finished by
        ``sync_to_async`` though its view was cancelled, and the view started its reply: so here;
        no client watching, the reply is ended as abandoned after the grace period."""
        try:
            reply_start(plan)
        except Exception:  # the other posts of the batch are still to be answered
            logger.exception("reply %s: could not be started after its client left", plan.message_id)


_batchers = PerLoop(PostBatcher)


def post_batcher() -> PostBatcher:
    """The running loop's batcher."""
    return _batchers.get()


def _message_posts_of(batch: list[_Post]) -> list[PostAnswer | Exception]:
    """All of a batch's database work, in one hop to the thread pool."""
    answers: dict[int, PostAnswer | Exception] = {}
    inputs: dict[int, tuple[str, str]] = {}
    for index, post in enumerate(batch):
        try:
            inputs[index] = post.context.run(message_input, post.data)
        except Exception as error:
            answers[index] = error
    posts: dict[int, services.MessagePost] = {}
    try:
        read = statements.conversations_read([batch[index].conversation_id for index in inputs])
    except Exception as error:  # each post fails with it, as it failed alone
        answers.update(dict.fromkeys(inputs, error))
        inputs = {}
    for index, (content, model) in inputs.items():
        try:
            posts[index] = _message_post(batch[index], read, content, model)
        except Exception as error:
            answers[index] = error
    for index, posted in zip(posts, services.messages_post(list(posts.values())), strict=True):
        if isinstance(posted, Exception):
            answers[index] = posted
        else:
            answers[index] = (batch[index].context.run(_posted_body, posted), posted.plan)
    return [answers[index] for index in range(len(batch))]


def _message_post(post: _Post, read: statements.ConversationRows, content: str, model: str) -> services.MessagePost:
    conversation, rows = statements.conversation_for_post(
        read, owner_id=post.caller.user_id, conversation_id=post.conversation_id
    )
    return services.MessagePost(conversation, content, post.caller, model, post.request_id, rows, post.context)


def _posted_body(posted: services.PostedMessage) -> dict[str, Any]:
    return {
        "user_message": message_output(posted.user_message),
        "assistant_message": message_output(posted.assistant_message),
        "stream_url": stream_url(posted.assistant_message),
    }


# --- an API client's post as raw ASGI ----------------------------------------------------------
#
# An API client's post went through the edge (``project.edge``): the path resolved against the
# whole URL conf (once per conversation, so for nearly every post), Django's request and response
# objects, two middleware and the response's close signals. Those were a third of the POST's CPU,
# and the POST is most of a stream's setup. ``MessagePostRoute`` answers the same posts straight
# from ASGI, with what the lean handler gives them: the allowed hosts, the request id, the body
# limit, errors in the one shape. Anything else (another method, no API key, a Host Django's own
# rules must judge) goes to the edge, untouched. ``tests/chat/test_message_edge.py`` holds its
# answers equal to the full stack's.

# As the edge answers a fault of ours (``project/edge/middleware.py``).
INTERNAL_ERROR = ("internal_error", "Something failed inside Switchyard; staff can find it by the request id.")
AsgiApp = Callable[[Any, Any, Any], Awaitable[None]]


class MessagePostRoute:
    """``POST /api/v1/conversations/{id}/messages`` with an API key, as raw ASGI (see above);
    every other request of the route goes to ``fallback``."""

    def __init__(self, fallback: AsgiApp) -> None:
        self.fallback = fallback

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = _headers_of(scope)
        if scope["type"] == "http" and scope["method"] not in _METHODS and _host_allowed(headers):
            # Before the full stack, whose CSRF check would refuse another method as a browser's
            # unprotected write (401 to an API key, which that check cannot see), not as a method
            # this route does not have.
            request_id = request_id_from(headers)
            refused = MethodNotAllowed(scope["method"], _METHODS)
            await asgi_json_send(send, 405, error_body_of(refused, request_id), request_id, refused.headers())
            return
        secret = api_key_secret_from(headers)
        if scope["type"] != "http" or scope["method"] != "POST" or secret is None or not _host_allowed(headers):
            await self.fallback(scope, receive, send)
            return
        body = await _body_read(receive)
        if body is None:
            return  # the client left before its body arrived
        request_id = request_id_from(headers)
        request_context_set(request_id)
        status, answer, extra = await _message_post_answer(
            secret, headers, body, int(scope["url_route"]["kwargs"]["conversation_id"]), request_id
        )
        await asgi_json_send(send, status, answer, request_id, extra)


# The methods of ``/api/v1/conversations/{id}/messages`` (OPTIONS: Django's answer, CORS included).
_METHODS = ("GET", "POST", "HEAD", "OPTIONS")


async def _message_post_answer(
    secret: str, headers: dict[str, str], body: bytes, conversation_id: int, request_id: str
) -> tuple[int, dict[str, Any], Mapping[str, Any]]:
    """(status, body, headers) of a post, in the order the lean view checks it."""
    try:
        caller = await caller_for_secret(secret)
        data = _json_of(headers, body)
        answer, plan = await post_batcher().post(caller, data, conversation_id, request_id)
        reply_start(plan)
        return 201, answer, plan.admission.headers()
    except ServiceError as error:
        return error.status, error_body_of(error, request_id), error.headers()
    except Exception:
        logger.exception("Internal Server Error: POST /api/v1/conversations/%s/messages", conversation_id)
        code, message = INTERNAL_ERROR
        return 500, error_body(500, code, message, request_id), {}


def _headers_of(scope: Any) -> dict[str, str]:
    """The request's headers by their names as ``api_key_secret_from`` and ``request_id_from``
    read them (a repeated header: its last value, as Django's ``request.headers``)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = _HEADER_NAMES.get(raw_name.lower())
        if name is not None:
            headers[name] = raw_value.decode("latin-1")
    return headers


_HEADER_NAMES = {
    b"authorization": "Authorization",
    b"x-api-key": "x-api-key",
    b"x-request-id": "X-Request-ID",
    b"host": "Host",
    b"content-length": "Content-Length",
}


def _host_allowed(headers: dict[str, str]) -> bool:
    """Whether Django's ``request.get_host()`` would take this Host; False also when it would
    read another header (``USE_X_FORWARDED_HOST``), so that the edge judges it as always."""
    host = headers.get("Host", "")
    if not host or setting("USE_X_FORWARDED_HOST"):
        return False
    allowed = setting("ALLOWED_HOSTS")
    if setting("DEBUG") and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # as Django's get_host
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


async def _body_read(receive: Any) -> bytes | None:
    """The whole body, or None when the client disconnected first. Its size is judged later, in
    the lean view's order (``_json_of``); the server refused a body declared too large already
    (``project/edge/daphne.py``), and one sent in chunks is read no further than one byte past the
    limit, so that a client cannot make the process hold more than that."""
    parts: list[bytes] = []
    size, limit = 0, setting("DATA_UPLOAD_MAX_MEMORY_SIZE")
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        part = message.get("body", b"")
        parts.append(part)
        size += len(part)
        if not message.get("more_body", False) or size > limit:
            return b"".join(parts)


def _json_of(headers: dict[str, str], body: bytes) -> Any:
    """``json_body(request, empty={})`` of this body: its declared and its real size, then JSON."""
    try:
        declared = int(headers.get("Content-Length") or 0)
    except ValueError:
        raise InvalidRequest("invalid_request", "The Content-Length header is not a number.") from None
    if max(declared, len(body)) > setting("DATA_UPLOAD_MAX_MEMORY_SIZE"):
        raise body_too_large()
    if not body.strip():
        return {}
    return json_document(body)


class MessageCancelApi(APIView):
    @extend_schema(request=None, responses=MessageOutput)
    def post(self, request: Request, message_id: int) -> Response:
        message = selectors.message_get(owner_id=request.user.pk, message_id=message_id)
        message = services.reply_cancel(message=message)
        return Response(MessageOutput(message).data)


class StartedReplyOutput(serializers.Serializer):
    assistant_message = MessageOutput()
    stream_url = serializers.CharField()


def _started(started: services.StartedReply) -> Response:
    reply_start(started.plan)
    body = {"assistant_message": message_output(started.message), "stream_url": stream_url(started.message)}
    return Response(body, status=status.HTTP_201_CREATED, headers=started.plan.admission.headers())


class RegenerateInput(serializers.Serializer):
    model = TextField(max_length=128, required=False, allow_blank=True)


class MessageRegenerateApi(APIView):
    """Another version of the latest reply (also the Retry of a failed or stopped one)."""

    @extend_schema(request=RegenerateInput, responses={201: StartedReplyOutput})
    def post(self, request: Request, message_id: int) -> Response:
        data = RegenerateInput(data=request.data or {})
        data.is_valid(raise_exception=True)
        message = selectors.message_get(owner_id=request.user.pk, message_id=message_id)
        started = services.reply_regenerate(
            message=message,
            caller=caller_of(request),
            model=data.validated_data.get("model", ""),
            request_id=request_id_of(request),
        )
        return _started(started)


class MessageContinueApi(APIView):
    """Generate on from a stopped or failed reply, into the same message."""

    @extend_schema(request=None, responses={201: StartedReplyOutput})
    def post(self, request: Request, message_id: int) -> Response:
        message = selectors.message_get(owner_id=request.user.pk, message_id=message_id)
        started = services.reply_continue(message=message, caller=caller_of(request), request_id=request_id_of(request))
        return _started(started)


EXPORT_FORMATS = ("markdown", "json")


class ConversationExportApi(APIView):
    """The conversation as a file: Markdown to read, or JSON with every message's fields."""

    @extend_schema(
        # Not "format": DRF reads that parameter to choose a renderer.
        parameters=[OpenApiParameter("as", str, enum=list(EXPORT_FORMATS), description="markdown (the default)")],
        responses={(200, "text/markdown"): str, (200, "application/json"): dict},
    )
    def get(self, request: Request, conversation_id: int) -> HttpResponse:
        kind = request.query_params.get("as", "markdown")
        if kind not in EXPORT_FORMATS:
            raise InvalidRequest("invalid_value", "'as' must be markdown or json.", param="as")
        conversation = selectors.conversation_get(owner_id=request.user.pk, conversation_id=conversation_id)
        messages = list(selectors.messages_of(conversation=conversation))
        if kind == "json":
            body = {
                "conversation": ConversationOutput(conversation).data,
                "messages": [message_output(message) for message in messages],
            }
            response = HttpResponse(json_compact(body), content_type="application/json")
        else:
            text = services.conversation_markdown(conversation=conversation, messages=messages)
            response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
        extension = "json" if kind == "json" else "md"
        response["Content-Disposition"] = f'attachment; filename="conversation-{conversation.pk}.{extension}"'
        return response


class MessageEditApi(APIView):
    """A new version of one of your messages, answered at once: the conversation branches there."""

    @extend_schema(request=MessageInput, responses={201: dict})
    def post(self, request: Request, message_id: int) -> Response:
        data = MessageInput(data=request.data)
        data.is_valid(raise_exception=True)
        message = selectors.message_get(owner_id=request.user.pk, message_id=message_id)
        posted = services.message_edit(
            message=message,
            content=data.validated_data["content"],
            model=data.validated_data.get("model", ""),
            caller=caller_of(request),
            request_id=request_id_of(request),
        )
        reply_start(posted.plan)
        body = {
            "user_message": message_output(posted.user_message),
            "assistant_message": message_output(posted.assistant_message),
            "stream_url": stream_url(posted.assistant_message),
        }
        return Response(body, status=status.HTTP_201_CREATED, headers=posted.plan.admission.headers())

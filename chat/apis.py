"""The chat API's CRUD side (CONTRACT 3.2): sync DRF views that answer in milliseconds.

Streaming is not here: ``chat.consumers`` serves ``GET /api/v1/messages/{id}/stream``.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import CSRFCheck
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors, services
from chat.models import Conversation, Message
from chat.replies import reply_start
from orchestration.models import ApiKey
from orchestration.types import OrchestrationError
from project.auth import api_key_secret_from
from project.errors import ApiError, error_response, request_id_of
from project.keycache import api_key_authenticate


def _api_key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def stream_url(message: Message) -> str:
    return f"/api/v1/messages/{message.pk}/stream"


class ConversationOutput(serializers.ModelSerializer):
    class Meta:
        model = Conversation
        fields = ["id", "title", "model", "system_prompt", "prompt_template", "created_at", "updated_at"]


class MessageOutput(serializers.ModelSerializer):
    conversation = serializers.IntegerField(source="conversation_id")

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
            "created_at",
            "finished_at",
        ]


_MESSAGE_OUTPUT = MessageOutput()


def message_output(message: Message) -> dict[str, Any]:
    """``MessageOutput(message).data`` from one serializer built once: a ModelSerializer builds
    its fields anew for every instance, which cost more CPU than the rest of posting a message."""
    return _MESSAGE_OUTPUT.to_representation(message)


class ConversationInput(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    model = serializers.CharField(max_length=128, required=False, allow_blank=True)
    system_prompt = serializers.CharField(max_length=services.MAX_CONTENT_CHARS, required=False, allow_blank=True)
    prompt_template = serializers.CharField(max_length=100, required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("system_prompt") and attrs.get("prompt_template"):
            raise serializers.ValidationError("Give a system_prompt or a prompt_template, not both.")
        return attrs


class ConversationsApi(APIView):
    @extend_schema(responses=ConversationOutput(many=True))
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.conversations_of(owner_id=request.user.pk), request, view=self)
        return paginator.get_paginated_response(ConversationOutput(page, many=True).data)

    @extend_schema(request=ConversationInput, responses={201: ConversationOutput})
    def post(self, request: Request) -> Response:
        data = ConversationInput(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = services.conversation_create(
            owner=request.user, api_key=_api_key(request), **data.validated_data
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
            conversation=conversation, api_key=_api_key(request), **data.validated_data
        )
        return Response(ConversationOutput(conversation).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, conversation_id: int) -> Response:
        conversation = selectors.conversation_get(owner_id=request.user.pk, conversation_id=conversation_id)
        services.conversation_delete(conversation=conversation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MessagePagination(LimitOffsetPagination):
    # A conversation is read whole by its page; the limit only guards against huge ones.
    default_limit = 500
    max_limit = 1000


class MessageInput(serializers.Serializer):
    # Length is checked by the service, which answers 413 rather than 400 for too long.
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)
    model = serializers.CharField(max_length=128, required=False, allow_blank=True)


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
# request stays on the event loop; its database work is one call into the loop's small thread pool;
# the reply starts on this very loop. Authentication and CSRF follow DRF's rules for the other views.


@csrf_exempt  # CSRF is enforced below for session-authenticated posts, as DRF does
async def conversation_messages(request: HttpRequest, conversation_id: int) -> HttpResponseBase:
    """``/api/v1/conversations/{id}/messages``: GET lists (DRF view), POST posts a message."""
    if request.method == "POST":
        return await message_create(request, conversation_id)
    response: HttpResponseBase = await sync_to_async(MessagesApi.as_view())(request, conversation_id=conversation_id)
    return response  # Django renders DRF's Response, as for any deferred-rendering response


async def message_create(request: HttpRequest, conversation_id: int) -> HttpResponseBase:
    """Post a message. API clients reach this view straight from ``chat.routing.MessagePostEdge``
    (no middleware but request ids and allowed hosts), browsers through the full stack."""
    try:
        owner, api_key = await _poster(request)
        body, plan = await _db(_message_post)(owner, api_key, request, conversation_id)
    except OrchestrationError as error:
        return _sized(error_response(request, ApiError.from_orchestration(error)))
    except ApiError as error:
        return _sized(error_response(request, error))
    reply_start(plan)
    return _sized(JsonResponse(body, status=201))


async def _poster(request: HttpRequest) -> tuple[Any, ApiKey | None]:
    """Who posts: the key's user and the key (cached lookup, ``project.keycache``), or the session's user."""
    if api_key_secret_from(request.headers) is None:
        return await _session_user(request), None
    key = await api_key_authenticate(request.headers)
    if key is None:
        raise ApiError(401, "invalid_api_key", "Incorrect API key provided.", headers=_CHALLENGE)
    # message_post reads only the owner's id and the key's id and models: no query to load either.
    owner = get_user_model()(pk=key.user_id)
    return owner, ApiKey(pk=key.id, user_id=key.user_id, allowed_models=sorted(key.allowed_models))


def _sized(response: HttpResponse) -> HttpResponse:
    """With the Content-Length that the full stack's CommonMiddleware sets (the lean path has none)."""
    response["Content-Length"] = str(len(response.content))
    return response


def _message_post(
    owner: Any, api_key: ApiKey | None, request: HttpRequest, conversation_id: int
) -> tuple[dict[str, Any], services.ReplyPlan]:
    """All of a POST's database work, in one hop to the thread pool."""
    data = MessageInput(data=_json_body(request))
    if not data.is_valid():
        raise ApiError(400, "invalid_request", _validation_message(data.errors))
    conversation = selectors.conversation_get(owner_id=owner.pk, conversation_id=conversation_id)
    conversation.owner = owner  # found by its owner: no query to load it again
    posted = services.message_post(
        conversation=conversation,
        content=data.validated_data["content"],
        model=data.validated_data.get("model", ""),
        api_key=api_key,
        request_id=request_id_of(request),
    )
    body = {
        "user_message": message_output(posted.user_message),
        "assistant_message": message_output(posted.assistant_message),
        "stream_url": stream_url(posted.assistant_message),
    }
    return body, posted.plan


async def _session_user(request: HttpRequest) -> Any:
    """The session's user, for a post that presents no API key (CSRF checked as DRF does)."""
    user = await request.auser()
    if not user.is_authenticated:
        raise ApiError(401, "not_authenticated", "Authentication credentials were not provided.", headers=_CHALLENGE)
    reason = CSRFCheck(lambda _: None).process_view(request, None, (), {})  # type: ignore[arg-type]
    if reason:
        raise ApiError(403, "permission_denied", f"CSRF Failed: {reason}")
    return user


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="switchyard"'}


def _json_body(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body or b"{}")
    except RequestDataTooBig as error:
        raise ApiError(413, "request_too_large", "The request body is too large.") from error
    except ValueError as error:
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from error


def _validation_message(errors: Any) -> str:
    return "; ".join(f"{name}: {' '.join(str(e) for e in problems)}" for name, problems in errors.items())


def _db(function: Any) -> Any:
    return sync_to_async(function, thread_sensitive=False)


class MessageCancelApi(APIView):
    @extend_schema(request=None, responses=MessageOutput)
    def post(self, request: Request, message_id: int) -> Response:
        message = selectors.message_get(owner_id=request.user.pk, message_id=message_id)
        message = services.reply_cancel(message=message)
        return Response(MessageOutput(message).data)

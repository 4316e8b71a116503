"""The chat API's CRUD side (CONTRACT 3.2): sync DRF views that answer in milliseconds.

Streaming is not here: ``chat.consumers`` serves ``GET /api/v1/messages/{id}/stream``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors, services
from chat.models import Conversation, Message
from chat.replies import reply_start
from orchestration.models import ApiKey
from project.errors import request_id_of


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

    @extend_schema(
        request=MessageInput,
        responses={
            201: inline_serializer(
                "MessagePosted",
                {
                    "user_message": MessageOutput(),
                    "assistant_message": MessageOutput(),
                    "stream_url": serializers.CharField(),
                },
            )
        },
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = selectors.conversation_get(owner_id=request.user.pk, conversation_id=conversation_id)
        data = MessageInput(data=request.data)
        data.is_valid(raise_exception=True)
        posted = services.message_post(
            conversation=conversation,
            content=data.validated_data["content"],
            model=data.validated_data.get("model", ""),
            api_key=_api_key(request),
            request_id=request_id_of(request),
        )
        transaction.on_commit(partial(reply_start, posted.plan))
        body = {
            "user_message": MessageOutput(posted.user_message).data,
            "assistant_message": MessageOutput(posted.assistant_message).data,
            "stream_url": stream_url(posted.assistant_message),
        }
        return Response(body, status=status.HTTP_201_CREATED)


class MessageCancelApi(APIView):
    @extend_schema(request=None, responses=MessageOutput)
    def post(self, request: Request, message_id: int) -> Response:
        message = selectors.message_get(owner_id=request.user.pk, message_id=message_id)
        message = services.reply_cancel(message=message)
        return Response(MessageOutput(message).data)

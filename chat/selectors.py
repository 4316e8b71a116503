"""Reads of conversations and messages, always scoped to their owner."""

from __future__ import annotations

from django.db.models import QuerySet

from chat.models import Conversation, Message
from orchestration.errors import NotFound


def conversations_of(*, owner_id: int) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner_id=owner_id)


def conversation_get(*, owner_id: int, conversation_id: int) -> Conversation:
    """The owner's conversation, or 404 (another person's conversation does not exist for you)."""
    conversation = Conversation.objects.filter(owner_id=owner_id, pk=conversation_id).first()
    if conversation is None:
        raise NotFound("conversation_not_found", f"No conversation {conversation_id}.")
    return conversation


def messages_of(*, conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.order_by("created_at", "id")


def message_get(*, owner_id: int, message_id: int) -> Message:
    message = Message.objects.of_owner(owner_id).select_related("conversation").filter(pk=message_id).first()
    if message is None:
        raise NotFound("message_not_found", f"No message {message_id}.")
    return message


def history_of(*, conversation: Conversation) -> list[Message]:
    """The turns a new reply should see: user messages and assistant replies with content.

    A failed reply is left out: the model should not continue from a broken answer.
    """
    usable = [Message.Status.COMPLETE, Message.Status.CANCELLED]
    return list(
        conversation.messages.filter(status__in=usable)
        .exclude(content="")
        .order_by("created_at", "id")
        .only("role", "content")
    )


def reply_streaming_in(*, conversation: Conversation) -> Message | None:
    return conversation.messages.streaming().filter(role=Message.Role.ASSISTANT).first()

"""Reads of conversations and messages, always scoped to their owner."""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Exists, Model, OuterRef, Q, QuerySet

from chat.models import Conversation, Message
from orchestration.errors import NotFound

M = TypeVar("M", bound=Model)


def conversations_of(*, owner_id: int, search: str = "") -> QuerySet[Conversation]:
    """The owner's conversations, newest first; with ``search``, those whose title or any
    message holds it (case-insensitive)."""
    conversations = Conversation.objects.filter(owner_id=owner_id)
    search = search.strip()
    if search:
        said = Message.objects.filter(conversation=OuterRef("pk"), content__icontains=search)
        conversations = conversations.filter(Q(title__icontains=search) | Q(Exists(said)))
    return conversations


def one_or_none(rows: QuerySet[M]) -> M | None:
    """The one row the filter names, or None. ``.get()`` leaves the models' default ordering out
    of the query, which ``.first()`` compiles in: the chat's hot reads are primary-key lookups."""
    try:
        return rows.get()
    except ObjectDoesNotExist:
        return None


def conversation_get(*, owner_id: int, conversation_id: int) -> Conversation:
    """The owner's conversation, or 404 (another person's conversation does not exist for you)."""
    conversation = one_or_none(Conversation.objects.filter(owner_id=owner_id, pk=conversation_id))
    if conversation is None:
        raise NotFound("conversation_not_found", f"No conversation {conversation_id}.")
    return conversation


def messages_of(*, conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.order_by("created_at", "id")


def message_get(*, owner_id: int, message_id: int) -> Message:
    message = one_or_none(Message.objects.of_owner(owner_id).select_related("conversation").filter(pk=message_id))
    if message is None:
        raise NotFound("message_not_found", f"No message {message_id}.")
    return message


def conversation_rows(*, conversation: Conversation) -> list[Message]:
    """Every message of the conversation, oldest first, with the fields that ``history_of`` and
    ``reply_streaming_in`` read: one query serves both when a reply is posted."""
    fields = ("role", "content", "status", "reply_to_id", "edit_of_id")
    return list(conversation.messages.order_by("created_at", "id").only(*fields))


def history_of(
    *, conversation: Conversation, through: Message | None = None, rows: list[Message] | None = None
) -> list[Message]:
    """The turns a new reply should see: the conversation's newest branch, up to and including
    ``through`` when given (a reply redone answers that message again).

    Of an edited message only its newest version counts, and the turns that followed an earlier
    version stay on that earlier branch; of a reply's versions only the newest counts. A failed
    reply is left out (the model should not continue from a broken answer), and so are the
    replies to ``through``.
    """
    usable = {Message.Status.COMPLETE, Message.Status.CANCELLED}
    rows = newest_branch(rows if rows is not None else conversation_rows(conversation=conversation))
    if through is not None:
        rows = [m for m in rows if m.pk <= through.pk]
    newest = {_version_group(m): m.pk for m in rows if m.role == Message.Role.ASSISTANT}
    return [
        m
        for m in rows
        if m.role == Message.Role.USER or (m.status in usable and m.content and newest[_version_group(m)] == m.pk)
    ]


def newest_branch(messages: list[Message]) -> list[Message]:
    """The messages of the newest branch, in order. An edit is written after everything that came
    before it, so an edited message's versions enclose the turns of the older branches: those
    between its first and its newest version (other than the versions themselves) are dropped,
    and so are the versions before the newest."""
    versions: dict[int, list[int]] = {}
    for message in messages:
        if message.role == Message.Role.USER:
            versions.setdefault(edit_group(message), []).append(message.pk)
    spans = {group: (ids[0], ids[-1]) for group, ids in versions.items() if len(ids) > 1}

    def on_branch(message: Message) -> bool:
        for group, (first, newest) in spans.items():
            if message.role == Message.Role.USER and edit_group(message) == group:
                if message.pk != newest:
                    return False
            elif first < message.pk < newest:
                return False
        return True

    return [message for message in messages if on_branch(message)]


def edit_group(message: Message) -> int:
    """The versions of an edited message share the id of its first version."""
    edit_of_id: int | None = message.edit_of_id  # type: ignore[attr-defined]
    return edit_of_id if edit_of_id is not None else message.pk


def _version_group(reply: Message) -> int:
    """Replies to one message are versions of one reply (rows older than ``reply_to`` stand alone)."""
    reply_to_id: int | None = reply.reply_to_id  # type: ignore[attr-defined]
    return reply_to_id if reply_to_id is not None else -reply.pk


def reply_streaming_in(*, conversation: Conversation, rows: list[Message] | None = None) -> Message | None:
    """The conversation's streaming reply, from ``rows`` (``conversation_rows``) when given."""
    if rows is not None:
        return next(
            (m for m in rows if m.status == Message.Status.STREAMING and m.role == Message.Role.ASSISTANT), None
        )
    # One at most: a partial unique index allows a single streaming message per conversation.
    return one_or_none(conversation.messages.streaming().filter(role=Message.Role.ASSISTANT))

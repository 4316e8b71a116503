"""Conversations and their messages. A reply is a Message that streams, then settles."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=128, help_text="Public model name replies use unless a message names another.")
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(
        null=True, blank=True, help_text="Sampling temperature of its replies (0 to 2); empty: the model's default."
    )
    prompt_template = models.CharField(
        max_length=100, blank=True, help_text="A managed prompt template whose latest version is the system prompt."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class MessageQuerySet(models.QuerySet["Message"]):
    def streaming(self) -> MessageQuerySet:
        return self.filter(status=Message.Status.STREAMING)

    def of_owner(self, owner_id: int) -> MessageQuerySet:
        return self.filter(conversation__owner_id=owner_id)


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        CANCELLED = "cancelled"
        FAILED = "failed"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    # A reply's user message: the replies to one user message are the versions of that reply
    # (regenerate and retry add one); the newest is the one later turns build on.
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="versions")
    # An edited user message: the first version it replaces. Edits branch the conversation: the
    # turns after the earlier version stay, on their own branch (chat.selectors.history_of).
    edit_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="edits")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    model = models.CharField(max_length=128, blank=True, help_text="The model that served the reply.")
    provider = models.CharField(max_length=64, blank=True, help_text="The provider that served the reply.")
    fallback_from = models.CharField(max_length=128, blank=True)
    simulated = models.BooleanField(default=False, help_text="Written by the built-in simulator, not a real model.")
    finish_reason = models.CharField(max_length=32, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    latency_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True, help_text="Time to first token.")
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    request_id = models.CharField(
        max_length=64, blank=True, help_text="The request that started (or continued) the reply: its request-log entry."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "status"])]
        constraints = [
            # At most one reply streams per conversation: a second post gets 409, even when racing.
            models.UniqueConstraint(
                fields=["conversation"],
                condition=models.Q(status="streaming"),
                name="chat_one_streaming_reply_per_conversation",
            )
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status != Message.Status.STREAMING

"""A stored response of the Responses API (``store: true``, the default, and every background one)."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import TextChoices


class StoredResponse(models.Model):
    class Status(TextChoices):
        QUEUED = "queued", "Queued"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        INCOMPLETE = "incomplete", "Incomplete"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    UNFINISHED: ClassVar[tuple[str, ...]] = (Status.QUEUED, Status.IN_PROGRESS)

    id = models.CharField(primary_key=True, max_length=64)  # "resp_<hex>", as OpenAI writes it
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="responses")
    api_key_id = models.BigIntegerField(null=True, blank=True)  # the key that made it; it pays a background run
    model = models.CharField(max_length=128)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IN_PROGRESS)
    background = models.BooleanField(default=False)
    previous_response_id = models.CharField(max_length=64, blank=True)
    # What was asked besides the input (instructions, tools, text, sampling, metadata...), as
    # validated: enough to run it again in a worker and to echo it in the Response object.
    settings = models.JSONField(default=dict)
    input_items = models.JSONField(default=list)  # the input, as items with ids
    output = models.JSONField(default=list)
    usage = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    incomplete_details = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    # Background runs only: the claim number, who holds it, and when it last beat (as agent tasks).
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=128, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "orchestration"
        verbose_name = "stored response"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]

    def __str__(self) -> str:
        return self.id

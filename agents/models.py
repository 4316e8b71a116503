"""Agent tasks and their logs, the knowledge base the agents search, and support tickets."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class TaskQuerySet(models.QuerySet["Task"]):
    def owned_by(self, user: object) -> TaskQuerySet:
        return self.filter(owner=user)

    def unfinished(self) -> TaskQuerySet:
        return self.filter(status__in=Task.UNFINISHED)


class Task(models.Model):
    """One run of an agent. The row is the source of truth for status; workers hold it by a
    claim (``attempts`` is the claim number) and every write of theirs checks that claim."""

    class Status(models.TextChoices):
        PENDING = "PENDING"
        PROCESSING = "PROCESSING"
        WAITING_INPUT = "WAITING_INPUT"
        COMPLETED = "COMPLETED"
        FAILED = "FAILED"
        CANCELLED = "CANCELLED"

    class Origin(models.TextChoices):
        API = "api", "Task API (RQ worker)"
        WEBSOCKET = "websocket", "WebSocket session"

    UNFINISHED = (Status.PENDING, Status.PROCESSING, Status.WAITING_INPUT)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_tasks")
    api_key = models.ForeignKey(
        "orchestration.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="agent_tasks"
    )
    agent = models.CharField(max_length=64)
    input = models.TextField()
    model = models.CharField(max_length=128)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.API)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    current_step = models.CharField(max_length=200, blank=True)
    result = models.TextField(blank=True)
    error = models.JSONField(null=True, blank=True, help_text="{code, message} when the task failed or was cancelled.")
    idempotency_key = models.CharField(max_length=255, blank=True)
    input_request_id = models.CharField(max_length=64, blank=True)
    input_prompt = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="Who holds the claim: host:pid or ws:session.")
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the claim holder; empty while queued."
    )
    attempts = models.PositiveIntegerField(default=0, help_text="Claims taken so far; the current claim's number.")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="task_unique_idempotency_key_per_owner",
            )
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="task_owner_newest"),
            models.Index(fields=["status", "heartbeat_at"], name="task_status_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"{self.agent} {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status not in self.UNFINISHED


class TaskEvent(models.Model):
    """One log item of a task. The log doubles as the checkpoint a re-run replays."""

    class Type(models.TextChoices):
        THOUGHT = "thought"
        ACTION = "action"
        TOOL_RESULT = "tool_result"
        NEED_INPUT = "need_input"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=16, choices=Type.choices)
    content = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["task", "seq"]
        constraints = [models.UniqueConstraint(fields=["task", "seq"], name="task_event_unique_seq")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type}"


class KnowledgeArticle(models.Model):
    """An article the agents' search tool can find; edited in the admin."""

    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    body = models.TextField()
    tags = models.CharField(max_length=300, blank=True, help_text="Comma-separated keywords that help search.")
    published = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class SupportTicket(models.Model):
    """What the support-triage agent files. Writing one is the side effect a re-run must not repeat."""

    class Priority(models.TextChoices):
        LOW = "low"
        NORMAL = "normal"
        HIGH = "high"
        URGENT = "urgent"

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="support_tickets")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    subject = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.NORMAL)
    category = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"

"""API keys and the access policy of people who call without one.

Both are models of the ``orchestration`` app (``orchestration.models`` imports them), kept here
beside the code that reads them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(enabled=True, revoked_at__isnull=True)


class ApiKey(models.Model):
    """A client credential. Only the SHA-256 of the secret is stored; the prefix identifies it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    allowed_models = models.JSONField(default=list, blank=True, help_text="Empty means every model.")
    rpm = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute; empty = no limit.")
    tpm = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute; empty = no limit.")
    monthly_budget_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        app_label = "orchestration"
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or self.user})"


class AccessPolicy(models.Model):
    """What one person may do signed in, without an API key (the chat, the agent console, the
    task pages). A field left empty takes the default of ``settings.SWITCHYARD["USER_POLICY"]``;
    ``unlimited`` lifts every limit. People without a row get the defaults."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_policy")
    unlimited = models.BooleanField(default=False, help_text="No rate limits and no budget for this person.")
    rpm = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute; empty = the default.")
    tpm = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute; empty = the default.")
    monthly_budget_usd = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True, help_text="USD per calendar month; empty = the default."
    )
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Models this person may use in the browser; empty = every model."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "orchestration"
        verbose_name = "access policy"
        verbose_name_plural = "access policies"

    def __str__(self) -> str:
        return f"access policy of {self.user}"

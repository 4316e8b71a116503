"""The model registry, breaker mirror, cache index and request log; API keys and access
policies live in ``orchestration.access.models`` and are models of this app too."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import TextChoices

from orchestration.access.models import AccessPolicy, ApiKey
from orchestration.responses.models import StoredResponse

__all__ = [
    "AccessPolicy",
    "ApiKey",
    "BreakerState",
    "CacheEntry",
    "Deployment",
    "Experiment",
    "ExperimentVariant",
    "Fallback",
    "Feedback",
    "LanguageModel",
    "PromptTemplate",
    "PromptVersion",
    "Provider",
    "RequestLog",
    "StoredResponse",
]


class Provider(models.Model):
    # Inside this class `models` also names the reverse relation of LanguageModel.provider,
    # so the choices base is imported by its own name.
    class Kind(TextChoices):
        OPENAI = "openai", "OpenAI"
        OPENAI_COMPATIBLE = "openai-compatible", "OpenAI-compatible"
        ANTHROPIC = "anthropic", "Anthropic"
        GEMINI = "gemini", "Google Gemini"
        SIMULATOR = "simulator", "Simulator"

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    base_url = models.URLField(max_length=500, blank=True)
    api_key_env = models.CharField(
        max_length=128, blank=True, help_text="Name of the environment variable holding the secret."
    )
    api_key_encrypted = models.TextField(blank=True, editable=False, help_text="Fernet token; never shown.")
    timeout_s = models.FloatField(default=30.0)
    max_retries = models.PositiveSmallIntegerField(default=2)
    retry_base_s = models.FloatField(default=1.0, help_text="Delay before the first retry; doubles after.")
    breaker_failure_rate = models.FloatField(default=0.5)
    breaker_window = models.PositiveIntegerField(default=10)
    breaker_open_s = models.FloatField(default=30.0)
    breaker_per_model = models.BooleanField(default=False, help_text="One breaker per provider and model.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class LanguageModelQuerySet(models.QuerySet["LanguageModel"]):
    def routable(self) -> LanguageModelQuerySet:
        return self.filter(enabled=True, provider__enabled=True)


class LanguageModel(models.Model):
    """A public model name and how to reach it: through its deployments (``Deployment``), or, when it
    has none, through ``provider`` and ``upstream`` alone (the one-deployment case)."""

    class Strategy(TextChoices):
        WEIGHTED = "weighted", "Weighted (random by weight)"
        LEAST_BUSY = "least-busy", "Least busy (fewest calls in flight)"
        LATENCY = "latency", "Lowest latency (EWMA, with exploration)"
        COST = "cost", "Cheapest first"

    name = models.CharField(max_length=128, unique=True, help_text="The name clients ask for.")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    upstream = models.CharField(max_length=200, help_text="The provider's own model id.")
    description = models.CharField(max_length=300, blank=True)
    input_per_mtok = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    output_per_mtok = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    context_window = models.PositiveIntegerField(default=8192)
    max_output_tokens = models.PositiveIntegerField(default=4096)
    capabilities = models.JSONField(default=list, blank=True, help_text='e.g. ["chat", "tools", "embeddings"]')
    deadline_s = models.FloatField(null=True, blank=True, help_text="Overrides the endpoint's deadline.")
    tokens_per_second = models.FloatField(default=50.0, help_text="Measured generation speed, for timeouts.")
    content_policy_fallback = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cache_exact_enabled = models.BooleanField(default=True)
    cache_exact_ttl_s = models.PositiveIntegerField(default=3600)
    cache_semantic = models.BooleanField(default=False)
    # The largest share of wrong semantic hits the operator accepts; the similarity threshold follows
    # from it (orchestration/caching/policy.py). A raw threshold, the older setting, overrides it.
    cache_semantic_error_budget = models.FloatField(
        default=0.01,
        validators=[MinValueValidator(0.0001), MaxValueValidator(0.5)],
        help_text="Maximum share of semantic hits that may be wrong (0.01 = 1%); the threshold is derived from it.",
    )
    cache_semantic_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.01), MaxValueValidator(1.0)],
        help_text="Optional raw cosine threshold; when set it replaces the one derived from the error budget.",
    )
    # Raised by reports of wrong semantic hits (orchestration/caching/feedback.py): no hit below it.
    cache_semantic_learned_floor = models.FloatField(
        default=0.0, help_text="Similarity below which no semantic hit is served, learned from wrong-hit reports."
    )
    cache_semantic_max_turns = models.PositiveSmallIntegerField(default=4)
    routing_strategy = models.CharField(
        max_length=16,
        choices=Strategy.choices,
        default=Strategy.WEIGHTED,
        db_default=Strategy.WEIGHTED,
        help_text="How a call picks one of the model's deployments.",
    )
    enabled = models.BooleanField(default=True)
    chat_default = models.BooleanField(
        default=False,
        help_text="New chats start with this model (at most one). Without one, the cheapest chat model is used.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LanguageModelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "model"
        constraints = [
            models.UniqueConstraint(
                fields=["chat_default"],
                condition=models.Q(chat_default=True),
                name="one_default_chat_model",
                violation_error_message="Another model is already the chat's default: clear it there first.",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Deployment(models.Model):
    """One way to serve a model name: a provider account (and region) and its upstream model."""

    model = models.ForeignKey(LanguageModel, on_delete=models.CASCADE, related_name="deployments")
    name = models.SlugField(max_length=64, help_text="Unique within the model; named in logs, headers and metrics.")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="deployments")
    upstream = models.CharField(max_length=200, help_text="The provider's own model id.")
    weight = models.PositiveIntegerField(default=1, help_text="Share of traffic under the weighted strategy.")
    rpm_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute the provider account allows; empty = no limit."
    )
    tpm_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens per minute the provider account allows; empty = no limit."
    )
    region = models.CharField(max_length=64, blank=True)
    tag = models.CharField(max_length=64, blank=True)
    input_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True, help_text="Empty: the model's price."
    )
    output_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True, help_text="Empty: the model's price."
    )
    position = models.PositiveSmallIntegerField(default=0)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["model", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="deployment_unique_name")]

    def __str__(self) -> str:
        return f"{self.model.name}/{self.name}"


class Fallback(models.Model):
    model = models.ForeignKey(LanguageModel, on_delete=models.CASCADE, related_name="fallbacks")
    target = models.ForeignKey(LanguageModel, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["model", "position"]
        constraints = [models.UniqueConstraint(fields=["model", "position"], name="fallback_unique_position")]

    def __str__(self) -> str:
        return f"{self.model} -> {self.target} (#{self.position})"


class PromptTemplate(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PromptVersion(models.Model):
    """An immutable version of a template: editing makes a new row, so old logs stay true."""

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    system_prompt = models.TextField()
    variables = models.JSONField(default=list, blank=True, help_text="Names used as {name} in the prompt.")
    default_model = models.ForeignKey(LanguageModel, null=True, blank=True, on_delete=models.SET_NULL)
    parameters = models.JSONField(default=dict, blank=True, help_text="Default temperature, max_tokens...")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["template", "-version"]
        constraints = [models.UniqueConstraint(fields=["template", "version"], name="prompt_unique_version")]

    def __str__(self) -> str:
        return f"{self.template.name} v{self.version}"


class BreakerState(models.Model):
    """Mirror of a circuit breaker kept in Redis; written on every transition, for the admin."""

    class State(models.TextChoices):
        CLOSED = "closed"
        OPEN = "open"
        HALF_OPEN = "half_open"

    key = models.CharField(max_length=300, unique=True, help_text="provider or provider:model")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="breakers")
    model = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CLOSED)
    failure_rate = models.FloatField(default=0.0)
    window_calls = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    next_probe_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key}: {self.state}"


class CacheEntry(models.Model):
    """Index of what the caches in Redis hold, for the admin (the answers live in Redis)."""

    class Kind(models.TextChoices):
        EXACT = "exact"
        SEMANTIC = "semantic"

    key = models.CharField(max_length=128, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    model = models.CharField(max_length=128, db_index=True)
    scope = models.CharField(max_length=64, blank=True)
    question_preview = models.CharField(max_length=300, blank=True)
    answer_preview = models.CharField(max_length=300, blank=True)
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "cache entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.model} {self.key[:12]}"


class SemanticWrongHit(models.Model):
    """A semantic cache hit someone reported as the wrong answer (API flag or admin action)."""

    class Source(models.TextChoices):
        API = "api"
        ADMIN = "admin"

    model = models.CharField(max_length=128, db_index=True)
    entry_key = models.CharField(max_length=128)
    similarity = models.FloatField(null=True, blank=True, help_text="Of the reported hit; unknown from the admin.")
    question_preview = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    reported_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-reported_at"]

    def __str__(self) -> str:
        return f"wrong hit {self.model} {self.entry_key[:20]}"


class RequestLog(models.Model):
    """One row per LLM call through the Orchestrator; written in batches off the hot path."""

    request_id = models.CharField(max_length=64, db_index=True)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    endpoint = models.CharField(max_length=32)
    model_requested = models.CharField(max_length=128)
    model_served = models.CharField(max_length=128, blank=True)
    provider_served = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    fallbacks = models.JSONField(default=list, blank=True)
    cache_status = models.CharField(max_length=16, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    latency_ms = models.FloatField(default=0.0)
    ttft_ms = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=16, default="ok")  # ok | error | cancelled
    error_kind = models.CharField(max_length=32, blank=True)
    # db_default: processes of the previous release, still writing during a rolling upgrade, leave it out.
    error_detail = models.TextField(
        blank=True, default="", db_default="", help_text="What the provider said (secrets redacted); staff only."
    )
    prompt_template = models.CharField(max_length=100, blank=True)
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    # db_default on the columns below for the same reason as error_detail.
    deployment = models.CharField(max_length=64, blank=True, default="", db_default="")
    experiment = models.CharField(max_length=100, blank=True, default="", db_default="")
    variant = models.CharField(max_length=64, blank=True, default="", db_default="")
    message_id = models.BigIntegerField(null=True, blank=True, help_text="The chat reply this call wrote.")
    usage_estimated = models.BooleanField(
        default=False,
        db_default=False,
        help_text="The provider did not report the usage (a stream cut short, or a server that never sends it): "
        "the tokens were counted from the prompt and the text sent, four characters a token.",
    )
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["api_key", "created_at"]), models.Index(fields=["model_served", "created_at"])]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model_requested} {self.status}"


class Experiment(models.Model):
    """A split of one model's traffic, or of one prompt template's, between variants by
    percentage, sticky per subject."""

    class Status(models.TextChoices):
        RUNNING = "running"
        PAUSED = "paused"
        ENDED = "ended"

    class Sticky(models.TextChoices):
        USER = "user"
        CONVERSATION = "conversation"
        KEY = "key"

    name = models.SlugField(max_length=100, unique=True)
    model = models.ForeignKey(
        LanguageModel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="experiments",
        help_text="The model name whose calls are split (or name a prompt template instead).",
    )
    prompt_template = models.ForeignKey(
        PromptTemplate,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="experiments",
        help_text="The prompt template whose calls are split (or name a model instead).",
    )
    sticky_by = models.CharField(max_length=16, choices=Sticky.choices, default=Sticky.USER)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    winner = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One live experiment per model or template: two would fight over the same calls.
            models.UniqueConstraint(
                fields=["model"], condition=~models.Q(status="ended"), name="experiment_one_live_per_model"
            ),
            models.UniqueConstraint(
                fields=["prompt_template"], condition=~models.Q(status="ended"), name="experiment_one_live_per_prompt"
            ),
            models.CheckConstraint(
                condition=models.Q(model__isnull=True) ^ models.Q(prompt_template__isnull=True),
                name="experiment_splits_a_model_or_a_prompt",
                violation_error_message="Name a model or a prompt template to split, not both.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ExperimentVariant(models.Model):
    """One arm: the model that serves it (the experiment's own when empty), the prompt version it
    uses (prompt experiments; empty: the latest) and extra parameters."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.SlugField(max_length=64)
    target = models.ForeignKey(
        LanguageModel, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text="Empty: unchanged."
    )
    prompt_version = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: the latest version.")
    parameters = models.JSONField(default=dict, blank=True, help_text='e.g. {"temperature": 0.2}')
    percent = models.PositiveSmallIntegerField(help_text="Share of the traffic, 0-100; the variants add up to 100.")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["experiment", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["experiment", "name"], name="variant_unique_name")]

    def __str__(self) -> str:
        return f"{self.experiment.name}/{self.name}"


class Feedback(models.Model):
    """A thumbs up or down on one call's answer, with the experiment arm that answered."""

    request_id = models.CharField(max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    score = models.SmallIntegerField(help_text="+1 or -1")
    comment = models.TextField(blank=True)
    model = models.CharField(max_length=128, blank=True)
    deployment = models.CharField(max_length=64, blank=True)
    experiment = models.CharField(max_length=100, blank=True, db_index=True)
    variant = models.CharField(max_length=64, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "feedback"
        # Request ids can come from clients (X-Request-ID), so they are only unique per user.
        constraints = [models.UniqueConstraint(fields=["user", "request_id"], name="feedback_one_per_call")]

    def __str__(self) -> str:
        return f"{self.request_id} {self.score:+d}"

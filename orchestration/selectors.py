"""Reads of the model registry for people and pages."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from orchestration.access.policy import user_policy
from orchestration.models import LanguageModel
from orchestration.registry import ModelRoute, snapshot


def _is_chat(capabilities: list[str] | tuple[str, ...] | None) -> bool:
    capabilities = capabilities or ()
    return "embeddings" not in capabilities or "chat" in capabilities


def chat_routes() -> list[ModelRoute]:
    """The routable chat models, by name (from the registry snapshot: no query once it is taken)."""
    routes = snapshot().models
    return [routes[name] for name in sorted(routes) if _is_chat(routes[name].capabilities)]


def models_for_user(user: AbstractBaseUser | AnonymousUser) -> list[LanguageModel]:
    """The chat models a signed-in person may pick in the browser: what their access policy allows."""
    if not user.is_authenticated:
        return []
    policy = user_policy(user.pk)
    models = LanguageModel.objects.routable().select_related("provider")
    return [m for m in models if _is_chat(m.capabilities) and policy.may_use(m.name)]


def default_chat_model(names: list[str]) -> str:
    """Of the chat models ``names`` (those a caller may use), the one new chats start with: the
    operator's choice (``chat_default``), else the cheapest, by its price per million tokens in and out."""
    if not names:
        return ""
    rows = {m.name: m for m in LanguageModel.objects.filter(name__in=names)}
    chosen = [name for name in names if name in rows and rows[name].chat_default]
    if chosen:
        return chosen[0]
    return min(names, key=lambda name: (_price_of(rows.get(name)), name))


def _price_of(model: LanguageModel | None) -> Decimal:
    if model is None:
        return Decimal("Infinity")
    return model.input_per_mtok + model.output_per_mtok

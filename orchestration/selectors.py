"""Reads of the model registry for people and pages."""

from __future__ import annotations

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

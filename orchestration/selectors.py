"""Reads of the model registry for people and pages."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from orchestration.models import ApiKey, LanguageModel


def models_for_user(user: AbstractBaseUser | AnonymousUser) -> list[LanguageModel]:
    """The chat models a signed-in person may pick.

    Every routable chat model, unless each of the person's active keys is limited to a list:
    then the union of those lists, so the browser never offers what the API would refuse.
    """
    models = list(LanguageModel.objects.routable().select_related("provider"))
    chat_models = [m for m in models if "embeddings" not in (m.capabilities or []) or "chat" in m.capabilities]
    if not user.is_authenticated:
        return []
    limits = [key.allowed_models for key in ApiKey.objects.active().filter(user_id=user.pk)]
    if limits and all(limits):
        allowed = {name for names in limits for name in names}
        chat_models = [m for m in chat_models if m.name in allowed]
    return chat_models

"""URLs of the orchestration app: the OpenAI-compatible ``/v1`` API, and feedback on calls."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, re_path, register_converter
from django.urls.converters import StringConverter

from orchestration import apis, textcompletions
from orchestration.responses import apis as responses
from orchestration.routing.apis import FeedbackCreateApi


class ResponseIdConverter(StringConverter):
    """A path segment that may be a response id: ours start with ``resp_`` (orchestration/responses/wire.py).
    Anything else after ``/v1/responses/`` (``input_tokens``, an endpoint we do not have) is then an
    unknown URL, answered as any other, not a ``405`` of the response routes."""

    regex = "resp_[^/]+"


register_converter(ResponseIdConverter, "response_id")

# django-stubs types view callables as sync; these views are async, which Django accepts.
urlpatterns: list[URLPattern | URLResolver] = [
    path("v1/chat/completions", apis.chat_completions, name="v1-chat-completions"),  # type: ignore[arg-type]
    path("v1/completions", textcompletions.completions, name="v1-completions"),  # type: ignore[arg-type]
    path("v1/embeddings", apis.embeddings, name="v1-embeddings"),  # type: ignore[arg-type]
    path("v1/responses", responses.responses_create, name="v1-responses"),  # type: ignore[arg-type]
    path("v1/responses/<response_id:response_id>", responses.response_detail, name="v1-response"),  # type: ignore[arg-type]
    path(
        "v1/responses/<response_id:response_id>/input_items",
        responses.response_input_items,  # type: ignore[arg-type]
        name="v1-response-input-items",
    ),
    path("v1/responses/<response_id:response_id>/cancel", responses.response_cancel, name="v1-response-cancel"),  # type: ignore[arg-type]
    path("v1/models", apis.models, name="v1-models"),  # type: ignore[arg-type]
    path("v1/cache/wrong-hits", apis.cache_wrong_hit, name="v1-cache-wrong-hits"),  # type: ignore[arg-type]
    path("v1/models/<path:model>", apis.model_detail, name="v1-model-detail"),  # type: ignore[arg-type]
    path("api/v1/feedback", FeedbackCreateApi.as_view(), name="feedback"),
    re_path(r"^v1/(?P<path>.*)$", apis.unknown_endpoint, name="v1-unknown"),  # type: ignore[arg-type]
]

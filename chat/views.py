"""The chat page. Its data comes from the chat API, in the browser."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from chat.services import MAX_CONTENT_CHARS
from orchestration.selectors import default_chat_model, models_for_user


@login_required
def chat_page(request: HttpRequest) -> HttpResponse:
    models = models_for_user(request.user)
    config = {
        "maxChars": MAX_CONTENT_CHARS,
        "defaultModel": default_chat_model([m.name for m in models]),
        # Staff see a failed reply's request id, linked to its request-log entry.
        "requestLogUrl": reverse("admin:orchestration_requestlog_changelist") if request.user.is_staff else "",
    }
    context = {"models": models, "model_names": [m.name for m in models], "chat_config": config}
    return render(request, "chat/chat.html", context)

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
    # Staff who may read the request log see a failed reply's request id, linked to its entry;
    # a link for the others would lead to the admin's "403 Forbidden".
    reads_log = request.user.is_staff and request.user.has_perm("orchestration.view_requestlog")
    config = {
        "maxChars": MAX_CONTENT_CHARS,
        "defaultModel": default_chat_model([m.name for m in models]),
        "requestLogUrl": reverse("admin:orchestration_requestlog_changelist") if reads_log else "",
    }
    context = {"models": models, "model_names": [m.name for m in models], "chat_config": config}
    return render(request, "chat/chat.html", context)

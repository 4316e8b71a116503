"""The chat page. Its data comes from the chat API, in the browser."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from orchestration.selectors import models_for_user


@login_required
def chat_page(request: HttpRequest) -> HttpResponse:
    models = models_for_user(request.user)
    return render(request, "chat/chat.html", {"models": models, "model_names": [m.name for m in models]})

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from agents import views as agent_pages
from chat import views as chat_pages
from orchestration import views as key_pages
from project import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", views.ApiDocsPage.as_view(url_name="schema"), name="api-docs"),
    path("admin/django-rq/", include("project.queues")),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", chat_pages.chat_page, name="chat"),
    path("agents/", agent_pages.console_page, name="agent-console"),
    path("tasks/", agent_pages.tasks_page, name="tasks"),
    path("tasks/<uuid:task_id>/", agent_pages.task_page, name="task"),
    path("keys/", key_pages.keys_page, name="keys"),
    path("keys/<int:key_id>/revoke", key_pages.key_revoke, name="key-revoke"),
    path("", include("orchestration.urls")),
    path("", include("chat.urls")),
    path("", include("agents.urls")),
]

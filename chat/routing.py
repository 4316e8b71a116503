from __future__ import annotations

from typing import Any

http_urlpatterns: list[Any] = []

"""Paging of the API's lists: ``limit`` and ``offset``, DRF's limit-offset style, but strict.

DRF's own class quietly falls back to its defaults when ``limit=abc`` or ``offset=-3``; a client
that sent them meant something else. Here a value that is not a whole number in range is a 400
naming the parameter, as every other bad input is."""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import LimitOffsetPagination

from orchestration.errors import InvalidRequest

MAX_LIMIT = 1000


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def get_limit(self, request: Any) -> int | None:
        raw = request.query_params.get(self.limit_query_param)
        if raw is None:
            return int(self.default_limit) if self.default_limit is not None else None
        return _whole(raw, self.limit_query_param, minimum=1, maximum=int(self.max_limit or MAX_LIMIT))

    def get_offset(self, request: Any) -> int:
        raw = request.query_params.get(self.offset_query_param)
        return 0 if raw is None else _whole(raw, self.offset_query_param, minimum=0, maximum=None)


def _whole(raw: str, name: str, *, minimum: int, maximum: int | None) -> int:
    bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of {minimum} or more"
    problem = InvalidRequest("invalid_value", f"'{name}' must be a whole number {bounds}.", param=name)
    try:
        value = int(raw)
    except ValueError:
        raise problem from None
    if value < minimum or (maximum is not None and value > maximum):
        raise problem
    return value


def page_parameters() -> list[Any]:
    """``limit`` and ``offset`` as the OpenAPI document describes them (drf-spectacular)."""
    from drf_spectacular.utils import OpenApiParameter

    limit = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}
    offset = {"type": "integer", "minimum": 0}
    return [
        OpenApiParameter("limit", limit, OpenApiParameter.QUERY, description=f"Items per page, 1 to {MAX_LIMIT}."),
        OpenApiParameter("offset", offset, OpenApiParameter.QUERY, description="Items to skip, 0 or more."),
    ]

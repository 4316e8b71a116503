"""Serializer fields that take a client's JSON as it was sent.

DRF's ``CharField`` turns a number into its text (``42`` becomes ``"42"``), so a client that sent
the wrong type was answered as if it had not. Every text an API door reads is a ``TextField``:
anything but a JSON string is a 400 naming the field, as the WebSocket door and ``/v1`` answer it.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from orchestration.errors import TooLarge


class TextField(serializers.CharField):
    """``too_large``: the code of a text over ``max_length``, answered ``413`` as a body too large
    is (and as the WebSocket door answers the same text), not ``400``."""

    def __init__(self, *, too_large: str = "", **kwargs: Any) -> None:
        self.too_large = too_large
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if self.too_large and self.max_length is not None and len(data) > self.max_length:
            name = self.field_name
            raise TooLarge(self.too_large, f"`{name}` is longer than {self.max_length} characters.", param=name)
        return str(super().to_internal_value(data))

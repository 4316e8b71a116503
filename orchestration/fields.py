"""Serializer fields that take a client's JSON as it was sent.

DRF's ``CharField`` turns a number into its text (``42`` becomes ``"42"``), so a client that sent
the wrong type was answered as if it had not. Every text an API door reads is a ``TextField``:
anything but a JSON string is a 400 naming the field, as the WebSocket door and ``/v1`` answer it.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class TextField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))

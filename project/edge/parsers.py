"""DRF's JSON parser, replaced by the one every door uses (``orchestration.validation.json_document``):
the same refusals (not JSON, NaN, too deep, invalid Unicode) with the same codes, lean path or not."""

from __future__ import annotations

from typing import Any

from rest_framework.parsers import BaseParser

from orchestration.validation import json_document


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return json_document(stream.read())

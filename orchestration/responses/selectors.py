"""Reads of stored responses: always through their owner (anyone else gets the same 404)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestration.errors import InvalidRequest, NotFound
from orchestration.responses.models import StoredResponse
from orchestration.responses.objects import ResponseDraft
from orchestration.responses.wire import response_id_of_item

# A conversation chained by previous_response_id longer than this is refused, not walked forever.
MAX_CHAIN = 200
MAX_PAGE = 100


def response_not_found(response_id: str, param: str | None = None) -> NotFound:
    return NotFound("response_not_found", f"No response found with id '{response_id}'.", param=param)


def previous_response_not_found(response_id: str) -> InvalidRequest:
    """OpenAI's answer when ``previous_response_id`` names nothing the caller may continue: a 400
    with this code, which clients that chain responses read as "send the whole conversation"."""
    message = f"Previous response with id '{response_id}' not found."
    return InvalidRequest("previous_response_not_found", message, param="previous_response_id")


def _owned(*, user_id: int, response_id: str) -> StoredResponse | None:
    """The caller's stored response of that id, or None. An id holding a null character names
    nothing stored (none can be) and is not looked up: PostgreSQL refuses such a query (a 500)."""
    if "\x00" in response_id:
        return None
    return StoredResponse.objects.filter(pk=response_id, owner_id=user_id).first()


def response_get_owned(*, user_id: int, response_id: str) -> StoredResponse:
    row = _owned(user_id=user_id, response_id=response_id)
    if row is None:
        raise response_not_found(response_id)
    return row


def draft_of(row: StoredResponse) -> ResponseDraft:
    return ResponseDraft(
        id=row.id,
        model=row.model,
        settings=row.settings,
        input_items=row.input_items,
        created_at=int(row.created_at.timestamp()),
        background=row.background,
        store=True,
        previous_response_id=row.previous_response_id,
        status=row.status,
        output=row.output,
        usage=row.usage,
        error=row.error,
        incomplete_details=row.incomplete_details,
        completed_at=int(row.completed_at.timestamp()) if row.completed_at else None,
    )


def conversation_items(*, user_id: int, previous_response_id: str) -> list[dict[str, Any]]:
    """The items of the conversation up to and including ``previous_response_id``: each earlier
    response's input, then its output, oldest first. Instructions are not carried over (as OpenAI)."""
    turns: list[list[dict[str, Any]]] = []
    next_id = previous_response_id
    while next_id:
        if len(turns) >= MAX_CHAIN:
            message = f"The conversation is longer than {MAX_CHAIN} chained responses; start a new one."
            raise InvalidRequest("conversation_too_long", message, param="previous_response_id")
        row = _owned(user_id=user_id, response_id=next_id)
        if row is None:
            raise previous_response_not_found(next_id)
        if row.status in StoredResponse.UNFINISHED:
            message = f"The response '{next_id}' is still {row.status}; continue from it once it has finished."
            raise InvalidRequest("previous_response_unfinished", message, param="previous_response_id")
        turns.append([*row.input_items, *row.output])
        next_id = row.previous_response_id
    return [item for turn in reversed(turns) for item in turn]


def items_resolved(*, user_id: int, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` with each ``item_reference`` replaced by the item of the caller's stored
    response it names (an input or output item); an id nobody of theirs holds is a 404."""
    rows: dict[str, StoredResponse | None] = {}
    resolved = []
    for item in items:
        if item["type"] != "item_reference":
            resolved.append(item)
            continue
        response_id = response_id_of_item(item["id"])
        if response_id is not None and response_id not in rows:
            rows[response_id] = _owned(user_id=user_id, response_id=response_id)
        row = rows.get(response_id) if response_id is not None else None
        found = (
            next((kept for kept in [*row.input_items, *row.output] if kept["id"] == item["id"]), None) if row else None
        )
        if found is None:
            message = f"No stored item found with id '{item['id']}'."
            raise NotFound("item_not_found", message, param=f"{item['param']}.id")
        resolved.append(found)
    return resolved


@dataclass(frozen=True, slots=True)
class ItemPage:
    items: list[dict[str, Any]]
    has_more: bool


def input_items_page(row: StoredResponse, *, after: str | None, limit: int, order: str) -> ItemPage:
    """A page of a response's input items, OpenAI's cursor style (``after`` an item id)."""
    items = list(row.input_items)
    if order == "desc":
        items.reverse()
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidRequest("invalid_value", f"No input item with id '{after}' in this response.", param="after")
        items = items[ids.index(after) + 1 :]
    return ItemPage(items=items[:limit], has_more=len(items) > limit)

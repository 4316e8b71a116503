"""The tools agents can call.

A tool is a name, a description and a JSON-schema for its arguments (what the model sees),
plus a plain synchronous function. Functions are synchronous because the ones that touch the
database must run inside the same transaction that records their result (see
``agents.recording``): that is what makes a side effect happen once per task even when a
worker dies. ``ask_user`` has no function: the runtime turns it into a request for input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Q

from agents.calculator import CalculationError, calculate, format_number
from agents.models import KnowledgeArticle, SupportTicket


class ToolError(Exception):
    """A tool could not do what was asked; the message goes back to the model, which may retry."""


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may know about the call it serves."""

    task_id: str | None = None
    owner_id: int | None = None
    call_id: str = ""
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


ToolFunction = Callable[[dict[str, Any], ToolContext], str]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    function: ToolFunction | None = None
    #: False when running the tool twice would do something twice (write a row, send a mail).
    safe_to_rerun: bool = True
    #: True for ``ask_user``: the runtime asks the person instead of running a function.
    asks_user: bool = False

    def spec(self) -> dict[str, Any]:
        """The OpenAI ``function`` tool object the model is given."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def invoke(self, arguments: dict[str, Any], context: ToolContext) -> str:
        """Run the tool; a refusal or a bad argument comes back as text the model can read."""
        if self.function is None:
            raise ToolError(f"{self.name} cannot be run directly")
        try:
            return self.function(validated_arguments(self.parameters, arguments), context)
        except ToolError as error:
            return f"error: {error}"


def validated_arguments(schema: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """Check the arguments against the tool's (flat) schema and fill in defaults."""
    properties: dict[str, dict[str, Any]] = schema.get("properties", {})
    missing = [name for name in schema.get("required", []) if arguments.get(name) in (None, "")]
    if missing:
        raise ToolError(f"missing argument(s): {', '.join(missing)}")
    values: dict[str, Any] = {}
    for name, rules in properties.items():
        if name in arguments and arguments[name] is not None:
            values[name] = _checked_value(name, rules, arguments[name])
        elif "default" in rules:
            values[name] = rules["default"]
    return values


def _checked_value(name: str, rules: dict[str, Any], value: Any) -> Any:
    kind = rules.get("type")
    if kind == "string" and not isinstance(value, str):
        value = str(value)
    if kind == "integer":
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise ToolError(f"{name} must be a whole number") from None
        value = max(rules.get("minimum", value), min(rules.get("maximum", value), value))
    if "enum" in rules and value not in rules["enum"]:
        raise ToolError(f"{name} must be one of: {', '.join(rules['enum'])}")
    if isinstance(value, str) and len(value) > rules.get("maxLength", 10_000):
        raise ToolError(f"{name} is longer than {rules.get('maxLength', 10_000)} characters")
    return value


# --- calculator ------------------------------------------------------------------------


def _calculator(arguments: dict[str, Any], context: ToolContext) -> str:
    try:
        return format_number(calculate(arguments["expression"]))
    except CalculationError as error:
        raise ToolError(str(error)) from None


CALCULATOR = Tool(
    name="calculator",
    description=(
        "Evaluate an arithmetic expression exactly. Supports + - * / // % and ^ or ** (power), brackets, "
        "the constants pi and e, and sqrt, exp, ln, log, log10, log2, sin, cos, tan, asin, acos, atan, "
        "abs, round, min, max, floor, ceil, factorial."
    ),
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. (2 + 3) * sqrt(16)", "maxLength": 500}},
        "required": ["expression"],
    },
    function=_calculator,
)


# --- current time ------------------------------------------------------------------------


def _current_time(arguments: dict[str, Any], context: ToolContext) -> str:
    name = arguments["timezone"] or "UTC"
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {name!r}; use an IANA name such as Europe/Paris") from None
    moment = context.now().astimezone(zone)
    return f"{moment.isoformat(timespec='seconds')} ({moment.strftime('%A %d %B %Y, %H:%M')} {name})"


CURRENT_TIME = Tool(
    name="current_time",
    description="The current date and time, in UTC or in a given IANA time zone.",
    parameters={
        "type": "object",
        "properties": {"timezone": {"type": "string", "description": "IANA name, e.g. Europe/Paris", "default": "UTC"}},
    },
    function=_current_time,
)


# --- knowledge base search -----------------------------------------------------------------

_STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i", "in",
        "is", "it", "my", "of", "on", "or", "the", "this", "to", "what", "when", "where", "which", "who",
        "why", "with", "you", "your",
    }
)  # fmt: skip
_WORD = re.compile(r"[a-z0-9][a-z0-9\-]+")


def search_terms(query: str) -> list[str]:
    return [word for word in dict.fromkeys(_WORD.findall(query.lower())) if word not in _STOPWORDS][:12]


def _article_score(article: KnowledgeArticle, terms: list[str]) -> int:
    title, tags, body = article.title.lower(), article.tags.lower(), article.body.lower()
    return sum(5 * title.count(term) + 3 * tags.count(term) + body.count(term) for term in terms)


def _snippet(body: str, terms: list[str], width: int = 280) -> str:
    lowered = body.lower()
    positions = [lowered.find(term) for term in terms if term in lowered]
    start = max(0, min(positions) - 60) if positions else 0
    text = " ".join(body[start : start + width].split())
    return ("…" if start else "") + text + ("…" if start + width < len(body) else "")


def _search_knowledge_base(arguments: dict[str, Any], context: ToolContext) -> str:
    terms = search_terms(arguments["query"])
    if not terms:
        raise ToolError("the query has no searchable words")
    matches = Q()
    for term in terms:
        matches |= Q(title__icontains=term) | Q(tags__icontains=term) | Q(body__icontains=term)
    candidates = list(KnowledgeArticle.objects.filter(published=True).filter(matches)[:200])
    ranked = sorted(candidates, key=lambda article: (-_article_score(article, terms), article.title))
    found = ranked[: arguments["limit"]]
    if not found:
        return f"No article matches {arguments['query']!r}."
    return "\n\n".join(f"[{a.slug}] {a.title}\n{_snippet(a.body, terms)}" for a in found)


SEARCH_KNOWLEDGE_BASE = Tool(
    name="search_knowledge_base",
    description="Search the Switchyard knowledge base. Returns the best-matching articles with a snippet each.",
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "keywords or a question", "maxLength": 500},
            "limit": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3},
        },
        "required": ["query"],
    },
    function=_search_knowledge_base,
)


# --- ask the user ---------------------------------------------------------------------------

ASK_USER = Tool(
    name="ask_user",
    description="Ask the person you are helping a question and wait for the answer. Use it only when needed.",
    parameters={
        "type": "object",
        "properties": {"question": {"type": "string", "maxLength": 2000}},
        "required": ["question"],
    },
    asks_user=True,
)


# --- support tickets --------------------------------------------------------------------------


def _create_ticket(arguments: dict[str, Any], context: ToolContext) -> str:
    if context.owner_id is None:
        raise ToolError("tickets can only be filed from a task")
    ticket = SupportTicket.objects.create(
        owner_id=context.owner_id,
        task_id=context.task_id,
        subject=arguments["subject"][:200],
        description=arguments["description"],
        priority=arguments["priority"],
        category=arguments.get("category", "")[:64],
    )
    return f"Created ticket #{ticket.pk} ({ticket.priority} priority): {ticket.subject}"


CREATE_TICKET = Tool(
    name="create_ticket",
    description="File a support ticket for the engineering team. Files a new ticket every time it is called.",
    parameters={
        "type": "object",
        "properties": {
            "subject": {"type": "string", "description": "one line", "maxLength": 200},
            "description": {"type": "string", "description": "what happened, with details", "maxLength": 5000},
            "priority": {"type": "string", "enum": [p.value for p in SupportTicket.Priority], "default": "normal"},
            "category": {"type": "string", "description": "billing, api, agents, chat, account or other"},
        },
        "required": ["subject", "description"],
    },
    function=_create_ticket,
    safe_to_rerun=False,
)

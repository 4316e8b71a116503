"""The built-in tools: the calculator's parser, time with an injected clock, knowledge search, tickets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.calculator import CalculationError, calculate, format_number
from agents.models import KnowledgeArticle, SupportTicket
from agents.tools import CALCULATOR, CREATE_TICKET, CURRENT_TIME, SEARCH_KNOWLEDGE_BASE, ToolContext


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("2^10", "1024"),
        ("2 ** 3 ** 2", "512"),
        ("-2^2", "-4"),
        ("7 // 2 + 7 % 2", "4"),
        ("10 / 4", "2.5"),
        ("sqrt(16) + abs(-3)", "7"),
        ("round(pi, 3)", "3.142"),
        ("max(1, 5, 3) - min(4, 2)", "3"),
        ("factorial(5)", "120"),
        ("3 × 4 ÷ 2", "6"),
        ("1e3 + 0.5", "1000.5"),
        ("log10(1000)", "3"),
    ],
)
def test_the_calculator_follows_arithmetic_precedence(expression: str, expected: str) -> None:
    assert format_number(calculate(expression)) == expected


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('true')", "not a known function"),
        ("().__class__", "not allowed"),
        ("x + 1", "unknown name"),
        ("[1, 2]", "not allowed"),
        ("'a' * 3", "not a number"),
        ("lambda: 1", "not allowed"),
        ("1 / 0", "division by zero"),
        ("9 ** 9 ** 9", "exponents above"),
        ("10 ** 400", "too large"),
        ("sqrt(-1)", "sqrt"),
        ("factorial(1000)", "factorial takes"),
        ("-" * 100 + "1", "nested too deeply"),
        ("1 +", "cannot parse"),
        ("", "empty"),
        ("1" * 600, "longer than"),
    ],
)
def test_the_calculator_refuses_what_is_not_arithmetic(expression: str, reason: str) -> None:
    with pytest.raises(CalculationError, match=reason):
        calculate(expression)


def test_tool_errors_come_back_as_text_for_the_model() -> None:
    assert CALCULATOR.invoke({"expression": "1/0"}, ToolContext()) == "error: division by zero"
    assert CALCULATOR.invoke({}, ToolContext()) == "error: missing argument(s): expression"


def test_current_time_reads_the_injected_clock_in_the_asked_zone() -> None:
    context = ToolContext(now=lambda: datetime(2025, 3, 1, 12, 30, tzinfo=UTC))
    assert CURRENT_TIME.invoke({}, context).startswith("2025-03-01T12:30:00+00:00")
    assert CURRENT_TIME.invoke({"timezone": "Asia/Tokyo"}, context).startswith("2025-03-01T21:30:00+09:00")
    assert CURRENT_TIME.invoke({"timezone": "Mars/Olympus"}, context).startswith("error: unknown time zone")


@pytest.mark.django_db
def test_search_ranks_title_and_tag_matches_first_and_skips_unpublished(knowledge_base: None) -> None:
    KnowledgeArticle.objects.create(
        slug="draft", title="Rate limits draft", body="rate limit 429 429 429", tags="429", published=False
    )
    found = SEARCH_KNOWLEDGE_BASE.invoke({"query": "What does a 429 rate limit mean?", "limit": 2}, ToolContext())

    first, second = found.split("\n\n")
    assert first.startswith("[rate-limits] Rate limits and the 429 response")
    assert "Rate limits draft" not in found and second.startswith("[")
    assert (
        SEARCH_KNOWLEDGE_BASE.invoke({"query": "zebra quantum"}, ToolContext()) == "No article matches 'zebra quantum'."
    )
    assert SEARCH_KNOWLEDGE_BASE.invoke({"query": "the of"}, ToolContext()).startswith("error:")


@pytest.mark.django_db
def test_the_seeded_knowledge_base_has_a_dozen_articles(knowledge_base: None) -> None:
    assert KnowledgeArticle.objects.filter(published=True).count() >= 12


@pytest.mark.django_db
def test_create_ticket_files_a_ticket_for_the_task_owner_and_checks_its_arguments(alice) -> None:
    context = ToolContext(owner_id=alice.pk)
    done = CREATE_TICKET.invoke({"subject": "Broken", "description": "It broke", "priority": "urgent"}, context)

    ticket = SupportTicket.objects.get()
    assert done == f"Created ticket #{ticket.pk} (urgent priority): Broken" and ticket.owner == alice
    refused = CREATE_TICKET.invoke({"subject": "x", "description": "y", "priority": "whenever"}, context)
    assert refused.startswith("error: priority must be one of")
    assert CREATE_TICKET.invoke({"subject": "x", "description": "y"}, ToolContext()).startswith("error:")
    assert SupportTicket.objects.count() == 1

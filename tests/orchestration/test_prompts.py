"""Prompt templates: rendering, versions, and what a request gets from them."""

from __future__ import annotations

import pytest

from orchestration.models import LanguageModel, PromptTemplate, Provider
from orchestration.prompts import (
    prompt_apply,
    prompt_render,
    prompt_text_render,
    prompt_variables,
    prompt_version_create,
)
from orchestration.types import ChatRequest, Message, OrchestrationError

pytestmark = pytest.mark.django_db


@pytest.fixture
def support() -> PromptTemplate:
    template = PromptTemplate.objects.create(name="support")
    prompt_version_create(
        template=template,
        system_prompt="You help customers of {company}. Answer in {language}.",
        parameters={"temperature": 0.2, "max_tokens": 300},
    )
    return template


def test_it_substitutes_variables_and_keeps_doubled_braces_literal() -> None:
    text = prompt_text_render('Reply as JSON {{"company": "{company}"}}', {"company": "Acme"})
    assert text == 'Reply as JSON {"company": "Acme"}'


def test_missing_variables_are_an_invalid_request_naming_each_of_them() -> None:
    with pytest.raises(OrchestrationError) as raised:
        prompt_text_render("{greeting}, {name}! Welcome to {place}.", {"name": "Ada"})
    assert (raised.value.code, raised.value.status) == ("invalid_request", 400)
    assert "greeting" in raised.value.message and "place" in raised.value.message
    assert "name," not in raised.value.message


def test_it_never_looks_up_attributes_of_values() -> None:
    assert prompt_variables("{user.__class__} {ok}") == ["ok"]
    assert prompt_text_render("{user.__class__}", {}) == "{user.__class__}"


def test_it_renders_the_latest_version_unless_one_is_named(support: PromptTemplate) -> None:
    prompt_version_create(template=support, system_prompt="v2 for {company}")
    assert prompt_render(name="support", variables={"company": "Acme"}).system == "v2 for Acme"
    first = prompt_render(name="support", variables={"company": "Acme", "language": "French"}, version=1)
    assert (first.version, first.system) == (1, "You help customers of Acme. Answer in French.")


def test_a_new_version_leaves_earlier_versions_unchanged(support: PromptTemplate) -> None:
    before = support.versions.get(version=1).system_prompt
    second = prompt_version_create(template=support, system_prompt="Be brief, {company}.")
    assert second.version == 2
    assert second.variables == ["company"]
    assert support.versions.get(version=1).system_prompt == before


def test_an_unknown_template_or_version_is_not_found_as_an_unknown_model_is(support: PromptTemplate) -> None:
    for name, version in (("nope", None), ("support", 9)):
        with pytest.raises(OrchestrationError) as raised:
            prompt_render(name=name, variables={}, version=version)
        assert (raised.value.code, raised.value.status) == ("prompt_template_not_found", 404)


def test_applying_a_prompt_puts_its_system_message_first_and_fills_only_unset_parameters(
    support: PromptTemplate,
) -> None:
    provider = Provider.objects.create(name="sim", kind="simulator")
    model = LanguageModel.objects.create(name="small", provider=provider, upstream="sim-small")
    prompt_version_create(
        template=support, system_prompt="Hi {company}", default_model=model, parameters={"temperature": 0.2, "seed": 7}
    )
    rendered = prompt_render(name="support", variables={"company": "Acme"})
    request = ChatRequest(model="", messages=[Message(role="user", content="Where is my order?")], temperature=0.9)
    applied = prompt_apply(request, rendered)
    assert [m.role for m in applied.messages] == ["system", "user"]
    assert applied.messages[0].content == "Hi Acme"
    assert (applied.temperature, applied.seed, applied.model) == (0.9, 7, "small")


def test_unknown_default_parameters_are_refused(support: PromptTemplate) -> None:
    with pytest.raises(OrchestrationError):
        prompt_version_create(template=support, system_prompt="x", parameters={"temprature": 0})

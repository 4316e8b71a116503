"""Named, versioned prompt templates: render one into a system message and default parameters.

A template's text names its variables as ``{name}`` (``{{`` and ``}}`` are literal braces).
Versions are immutable: an edit creates the next version, so a request log that says
"support-bot v3" keeps meaning the same text. Rendering substitutes plain values only (no
attribute or index lookups, unlike ``str.format``), so a template cannot reach into objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from channels.db import database_sync_to_async
from django.db import transaction
from django.db.models import Max

from orchestration.models import LanguageModel, PromptTemplate, PromptVersion
from orchestration.types import CallContext, ChatRequest, Message, OrchestrationError

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
# The generation parameters a template may set defaults for.
PARAMETERS = frozenset(
    {"temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty", "response_format"}
)


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    name: str
    version: int
    system: str
    parameters: dict[str, Any] = field(default_factory=dict)
    default_model: str | None = None


def prompt_variables(text: str) -> list[str]:
    """The variable names a template text uses, in order of first use."""
    names = [match.group(1) for match in _TOKEN.finditer(text) if match.group(1)]
    return list(dict.fromkeys(names))


def prompt_text_render(text: str, variables: Mapping[str, Any]) -> str:
    """Substitute ``{name}``; raises ``invalid_request`` naming every missing variable."""
    missing = [name for name in prompt_variables(text) if name not in variables]
    if missing:
        raise OrchestrationError("invalid_request", f"Missing prompt variables: {', '.join(missing)}.", status=400)

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return str(variables[match.group(1)])

    return _TOKEN.sub(substitute, text)


def _prompt_version(name: str, version: int | None) -> PromptVersion:
    versions = PromptVersion.objects.select_related("template", "default_model").filter(template__name=name)
    found = versions.filter(version=version).first() if version is not None else versions.order_by("-version").first()
    if found is None:
        which = f"{name!r} version {version}" if version is not None else repr(name)
        # Named in the body as a model is, and answered as an unknown model is: 404.
        raise OrchestrationError("prompt_template_not_found", f"There is no prompt template {which}.", status=404)
    return found


def _experiment_choice(name: str, ctx: CallContext) -> tuple[int | None, dict[str, Any]]:
    """The version and parameters of the call's variant when an experiment splits this template;
    the experiment and variant are written into ``ctx`` for the request log."""
    from orchestration.registry import snapshot
    from orchestration.routing.experiments import variant_for

    experiment = snapshot().prompt_experiments.get(name)
    variant = variant_for(experiment, ctx) if experiment is not None else None
    if experiment is None or variant is None:
        return None, {}
    ctx.experiment, ctx.variant = experiment.name, variant.name
    return variant.prompt_version, dict(variant.parameters)


def prompt_render(
    *, name: str, variables: Mapping[str, Any], version: int | None = None, ctx: CallContext | None = None
) -> RenderedPrompt:
    """Render template ``name`` (its latest version unless ``version`` is given). Given the call's
    ``ctx`` and no version, a running prompt experiment picks the version (and parameters)."""
    overrides: dict[str, Any] = {}
    if version is None and ctx is not None:
        version, overrides = _experiment_choice(name, ctx)
    found = _prompt_version(name, version)
    parameters = {key: value for key, value in (found.parameters or {}).items() if key in PARAMETERS}
    parameters.update(overrides)
    return RenderedPrompt(
        name=name,
        version=found.version,
        system=prompt_text_render(found.system_prompt, variables),
        parameters=parameters,
        default_model=found.default_model.name if found.default_model else None,
    )


async def aprompt_render(
    *, name: str, variables: Mapping[str, Any], version: int | None = None, ctx: CallContext | None = None
) -> RenderedPrompt:
    return await database_sync_to_async(prompt_render)(name=name, variables=variables, version=version, ctx=ctx)


def prompt_apply(request: ChatRequest, prompt: RenderedPrompt) -> ChatRequest:
    """The request with the prompt's system message first and its defaults where the request set none.

    The caller records ``prompt.name`` and ``prompt.version`` in its ``CallContext``.
    """
    known = {f.name for f in fields(ChatRequest)}
    defaults = {
        key: value for key, value in prompt.parameters.items() if key in known and getattr(request, key) is None
    }
    model = request.model or prompt.default_model or ""
    messages = [Message(role="system", content=prompt.system), *request.messages]
    return replace(request, model=model, messages=messages, **defaults)


@transaction.atomic
def prompt_version_create(
    *,
    template: PromptTemplate,
    system_prompt: str,
    variables: list[str] | None = None,
    default_model: LanguageModel | None = None,
    parameters: dict[str, Any] | None = None,
    created_by: Any = None,
) -> PromptVersion:
    """Add the next version of ``template``; earlier versions stay as they were."""
    PromptTemplate.objects.select_for_update().filter(pk=template.pk).first()
    unknown = sorted(set(parameters or {}) - PARAMETERS)
    if unknown:
        raise OrchestrationError("invalid_request", f"Unknown prompt parameters: {', '.join(unknown)}.", status=400)
    latest = template.versions.aggregate(latest=Max("version"))["latest"] or 0
    return PromptVersion.objects.create(
        template=template,
        version=latest + 1,
        system_prompt=system_prompt,
        variables=variables if variables is not None else prompt_variables(system_prompt),
        default_model=default_model,
        parameters=parameters or {},
        created_by=created_by,
    )

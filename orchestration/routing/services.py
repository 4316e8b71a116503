"""Writes of experiments: create, pause, resume, end, and promote a winner to be the default."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestration.errors import Conflict, InvalidRequest
from orchestration.models import Deployment, Experiment, ExperimentVariant, LanguageModel, PromptTemplate
from orchestration.prompts import prompt_version_create
from orchestration.registry import snapshot_invalidate
from orchestration.routing.experiments import VARIANT_PARAMETERS


def variant_parameters_check(parameters: dict[str, Any]) -> None:
    for key, value in parameters.items():
        kind = VARIANT_PARAMETERS.get(key)
        if kind is None:
            allowed = ", ".join(sorted(VARIANT_PARAMETERS))
            raise InvalidRequest("invalid_variant", f"A variant cannot set {key!r}; it may set: {allowed}.")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or (kind is int and not isinstance(value, int)):
            raise InvalidRequest("invalid_variant", f"The variant's {key} must be a number, got {value!r}.")


def variants_check(variants: list[dict[str, Any]], template: PromptTemplate | None = None) -> None:
    """Named apart, percentages adding up to 100, parameters a request has, and for a prompt
    experiment, versions the template has."""
    names = [variant["name"] for variant in variants]
    if len(variants) < 2:
        raise InvalidRequest("invalid_experiment", "An experiment needs at least two variants.")
    if len(set(names)) != len(names):
        raise InvalidRequest("invalid_experiment", "Two variants share a name: name them apart.")
    if sum(int(variant["percent"]) for variant in variants) != 100:
        raise InvalidRequest("invalid_experiment", "The variants' percentages must add up to 100.")
    for variant in variants:
        variant_parameters_check(variant.get("parameters") or {})
    versions = set(template.versions.values_list("version", flat=True)) if template is not None else set()
    for variant in variants:
        version = variant.get("prompt_version")
        if version is not None and template is None:
            raise InvalidRequest("invalid_variant", "Only an experiment on a prompt template chooses prompt versions.")
        if version is not None and version not in versions:
            raise InvalidRequest("invalid_variant", f"The prompt template {template} has no version {version}.")


@transaction.atomic
def experiment_create(
    *,
    name: str,
    sticky_by: str,
    variants: list[dict[str, Any]],
    model: LanguageModel | None = None,
    prompt_template: PromptTemplate | None = None,
) -> Experiment:
    """Split ``model``'s or ``prompt_template``'s calls. ``variants``: dicts of name, percent, and
    optional target (a LanguageModel), prompt_version and parameters."""
    if (model is None) == (prompt_template is None):
        raise InvalidRequest("invalid_experiment", "Name a model or a prompt template to split, not both.")
    variants_check(variants, prompt_template)
    split = model.name if model is not None else f"prompt template {prompt_template}"
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                name=name, model=model, prompt_template=prompt_template, sticky_by=sticky_by
            )
    except IntegrityError:
        raise Conflict("experiment_exists", f"{split} already has a live experiment (or the name is taken).") from None
    ExperimentVariant.objects.bulk_create(
        ExperimentVariant(
            experiment=experiment,
            name=variant["name"],
            percent=variant["percent"],
            target=variant.get("target"),
            prompt_version=variant.get("prompt_version"),
            parameters=variant.get("parameters") or {},
            position=position,
        )
        for position, variant in enumerate(variants)
    )
    transaction.on_commit(snapshot_invalidate)
    return experiment


def _status_set(experiment: Experiment, status: str, *, allowed_from: tuple[str, ...]) -> Experiment:
    changed = Experiment.objects.filter(pk=experiment.pk, status__in=allowed_from).update(
        status=status, ended_at=timezone.now() if status == Experiment.Status.ENDED else None
    )
    if changed != 1:
        raise Conflict("experiment_state", f"The experiment {experiment.name} is {experiment.status}.")
    snapshot_invalidate()
    experiment.refresh_from_db()
    return experiment


def experiment_pause(*, experiment: Experiment) -> Experiment:
    """Stop splitting: every call gets the model as configured, until resumed."""
    return _status_set(experiment, Experiment.Status.PAUSED, allowed_from=(Experiment.Status.RUNNING,))


def experiment_resume(*, experiment: Experiment) -> Experiment:
    return _status_set(experiment, Experiment.Status.RUNNING, allowed_from=(Experiment.Status.PAUSED,))


def experiment_end(*, experiment: Experiment) -> Experiment:
    live = (Experiment.Status.RUNNING, Experiment.Status.PAUSED)
    return _status_set(experiment, Experiment.Status.ENDED, allowed_from=live)


def model_mirror_first_deployment(*, model: LanguageModel) -> None:
    """Keep the model's own provider and upstream those of its first deployment, so what the model
    row shows is what serves first (and a model without deployment rows keeps its own)."""
    first = model.deployments.order_by("position", "id").first()
    if first is None or (model.provider_id, model.upstream) == (first.provider_id, first.upstream):
        return
    LanguageModel.objects.filter(pk=model.pk).update(provider_id=first.provider_id, upstream=first.upstream)
    snapshot_invalidate()


def _deployments_copy(source: LanguageModel, model: LanguageModel) -> None:
    """``model`` is served as ``source`` is: the same deployments (or its one provider) and prices."""
    rows = list(source.deployments.all()) or [
        Deployment(name=source.provider.name, provider=source.provider, upstream=source.upstream)
    ]
    model.deployments.all().delete()
    Deployment.objects.bulk_create(
        Deployment(
            model=model,
            name=row.name,
            provider_id=row.provider_id,
            upstream=row.upstream,
            weight=row.weight,
            rpm_limit=row.rpm_limit,
            tpm_limit=row.tpm_limit,
            region=row.region,
            tag=row.tag,
            input_per_mtok=row.input_per_mtok,
            output_per_mtok=row.output_per_mtok,
            position=position,
            enabled=row.enabled,
        )
        for position, row in enumerate(rows)
    )
    model.provider_id, model.upstream = rows[0].provider_id, rows[0].upstream
    model.input_per_mtok, model.output_per_mtok = source.input_per_mtok, source.output_per_mtok
    model.routing_strategy = source.routing_strategy
    model.save(update_fields=["provider", "upstream", "input_per_mtok", "output_per_mtok", "routing_strategy"])


def _prompt_promote(template: PromptTemplate, variant: ExperimentVariant) -> None:
    """The winner's version, with its parameters, becomes the template's latest (its default)."""
    versions = template.versions.order_by("-version")
    latest = versions.first()
    chosen = versions.filter(version=variant.prompt_version).first() if variant.prompt_version else latest
    if chosen is None or latest is None or (chosen.pk == latest.pk and not variant.parameters):
        return
    prompt_version_create(
        template=template,
        system_prompt=chosen.system_prompt,
        variables=list(chosen.variables or []),
        default_model=chosen.default_model,
        parameters={**(chosen.parameters or {}), **variant.parameters},
    )


@transaction.atomic
def experiment_promote(*, experiment: Experiment, variant: ExperimentVariant) -> Experiment:
    """End the experiment with ``variant`` as its winner, which becomes the default: a model is
    from now on served as the variant's target was (its deployments and prices); a prompt
    template gets the winner's version (and parameters) as its new latest version. The control
    variant wins by leaving things as they are."""
    if variant.experiment_id != experiment.pk:
        raise InvalidRequest("invalid_variant", f"{variant.name} is not a variant of {experiment.name}.")
    if experiment.prompt_template is not None:
        experiment = experiment_end(experiment=experiment)
        assert experiment.prompt_template is not None
        _prompt_promote(experiment.prompt_template, variant)
        return _winner_set(experiment, variant)
    if variant.parameters:
        raise InvalidRequest(
            "variant_not_promotable",
            f"The variant {variant.name} changes request parameters, which a model keeps no default for: "
            "set them in the clients or a prompt template, then end the experiment.",
        )
    experiment = experiment_end(experiment=experiment)
    model = experiment.model
    assert model is not None
    if variant.target is not None and variant.target.pk != model.pk:
        _deployments_copy(variant.target, model)
    return _winner_set(experiment, variant)


def _winner_set(experiment: Experiment, variant: ExperimentVariant) -> Experiment:
    Experiment.objects.filter(pk=experiment.pk).update(winner=variant.name)
    experiment.winner = variant.name
    transaction.on_commit(snapshot_invalidate)
    return experiment

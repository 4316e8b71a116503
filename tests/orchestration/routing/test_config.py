"""Deployments in config as code: the TOML shape, its errors, and the round trip through dump."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from orchestration.llmconfig import ConfigError, config_dump, config_load
from orchestration.models import Deployment, LanguageModel
from orchestration.registry import snapshot_load

pytestmark = pytest.mark.django_db

PROVIDERS = """\
[providers.openai-east]
kind = "openai"
base_url = "http://127.0.0.1:9100/v1"

[providers.openai-west]
kind = "openai"
base_url = "http://127.0.0.1:9101/v1"
"""

POOLED = (
    PROVIDERS
    + """
[models."gpt-4o"]
routing = "least-busy"
input_per_mtok = 2.50
output_per_mtok = 10.00
fallbacks = []

[[models."gpt-4o".deployments]]
name = "east"
provider = "openai-east"
upstream = "gpt-4o-2024-08-06"
weight = 3
rpm = 500
tpm = 200000
region = "eastus"

[[models."gpt-4o".deployments]]
provider = "openai-west"
upstream = "gpt-4o-2024-08-06"
tag = "spare"
input_per_mtok = 2.00
"""
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(text)
    return path


def test_a_model_with_two_deployments_loads_them_in_order_with_their_quotas(tmp_path: Path) -> None:
    config_load(_write(tmp_path, POOLED))
    model = LanguageModel.objects.get(name="gpt-4o")
    assert model.routing_strategy == "least-busy"
    assert (model.provider.name, model.upstream) == ("openai-east", "gpt-4o-2024-08-06")
    rows = list(model.deployments.order_by("position").values_list("name", "provider__name", "weight", "rpm_limit"))
    assert rows == [("east", "openai-east", 3, 500), ("openai-west", "openai-west", 1, None)]
    route = snapshot_load().models["gpt-4o"]
    assert [d.name for d in route.deployments] == ["east", "openai-west"]
    assert route.deployments[1].route.input_per_mtok == 2 and route.deployments[0].route.input_per_mtok == 2.5
    assert route.deployments[0].route.breaker_scope == "openai-east:gpt-4o-2024-08-06"


def test_dumping_deployments_and_loading_the_dump_changes_nothing(tmp_path: Path) -> None:
    config_load(_write(tmp_path, POOLED))
    dumped = config_dump()
    assert '[[models."gpt-4o".deployments]]' in dumped
    report = config_load(_write(tmp_path, dumped))
    assert {change.status for change in report.changes} == {"unchanged"}
    assert config_dump() == dumped


def test_the_one_deployment_shape_of_today_loads_as_one_deployment_and_dumps_unchanged(tmp_path: Path) -> None:
    simple = PROVIDERS + '\n[models.mini]\nprovider = "openai-east"\nupstream = "gpt-4o-mini"\n'
    config_load(_write(tmp_path, simple))
    route = snapshot_load().models["mini"]
    assert [(d.name, d.route.upstream, d.route.breaker_scope) for d in route.deployments] == [
        ("openai-east", "gpt-4o-mini", "")  # the provider's breaker, as before deployments
    ]
    assert "deployments" not in config_dump()
    assert {c.status for c in config_load(_write(tmp_path, simple)).changes} == {"unchanged"}


def test_going_back_from_deployments_to_one_provider_replaces_the_deployments(tmp_path: Path) -> None:
    config_load(_write(tmp_path, POOLED))
    text = PROVIDERS + '\n[models."gpt-4o"]\nprovider = "openai-west"\nupstream = "gpt-4o"\n'
    report = config_load(_write(tmp_path, text))
    assert [str(c) for c in report.changes if c.kind == "model"] == [
        "model gpt-4o: updated (provider, upstream, routing, input_per_mtok, output_per_mtok, deployments)"
    ]
    assert list(Deployment.objects.values_list("name", "provider__name")) == [("openai-west", "openai-west")]


@pytest.mark.parametrize(
    ("model_text", "expected"),
    [
        ('[models.m]\nupstream = "x"\n', "models.m.provider: is required (or list the model's deployments)"),
        (
            '[models.m]\nprovider = "openai-east"\n'
            '[[models.m.deployments]]\nprovider = "openai-east"\nupstream = "x"\n',
            "models.m.provider: with deployments listed, give it in each deployment",
        ),
        ('[[models.m.deployments]]\nprovider = "openai-east"\n', "deployment 1: upstream is required"),
        ('[[models.m.deployments]]\nprovider = "nowhere"\nupstream = "x"\n', "names the provider 'nowhere'"),
        ('[[models.m.deployments]]\nprovider = "openai-east"\nupstream = "x"\nweight = -1\n', "weight must be between"),
        ('[[models.m.deployments]]\nprovider = "openai-east"\nupstream = "x"\nrpms = 5\n', "did you mean 'rpm'?"),
        (
            '[[models.m.deployments]]\nprovider = "openai-east"\nupstream = "x"\n'
            '[[models.m.deployments]]\nprovider = "openai-east"\nupstream = "y"\n',
            "names deployment 'openai-east' more than once",
        ),
        ('[models.m]\nrouting = "fastest"\nprovider = "openai-east"\nupstream = "x"\n', "'fastest' is not one of"),
    ],
)
def test_bad_deployments_are_refused_with_the_key_named_and_nothing_loaded(
    tmp_path: Path, model_text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        config_load(_write(tmp_path, PROVIDERS + "\n" + model_text))
    assert expected in str(refused.value)
    assert not LanguageModel.objects.exists()


def test_a_budget_reserves_at_the_dearest_deployment_or_variant_that_may_serve(tmp_path: Path) -> None:
    from orchestration.access.admission import estimate
    from orchestration.routing.services import experiment_create

    config_load(_write(tmp_path, POOLED + '\n[models.pricey]\nprovider = "openai-east"\nupstream = "p"\n'
                       "input_per_mtok = 9.0\noutput_per_mtok = 90.0\n"))  # fmt: skip
    Deployment.objects.filter(name="openai-west").update(input_per_mtok=4)
    registry = snapshot_load()
    pooled = registry.models["gpt-4o"]
    # The first deployment is priced 2.50/10.00 and the second 4.00/10.00: the dearest is reserved.
    assert estimate(pooled, registry, input_tokens=1_000_000, max_tokens=1).worst_case_usd == Decimal("4.00001")
    experiment_create(
        name="pricier",
        model=LanguageModel.objects.get(name="gpt-4o"),
        sticky_by="user",
        variants=[
            {"name": "a", "percent": 50},
            {"name": "b", "percent": 50, "target": LanguageModel.objects.get(name="pricey")},
        ],
    )
    registry = snapshot_load()
    assert estimate(registry.models["gpt-4o"], registry, input_tokens=1_000_000, max_tokens=1).worst_case_usd == (
        Decimal("9.00009")
    )

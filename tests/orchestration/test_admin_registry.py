from __future__ import annotations

import re

import pytest
from django.urls import reverse

from orchestration.models import Fallback, LanguageModel, Provider
from orchestration.secrets import secret_decrypt, secret_encrypt

pytestmark = pytest.mark.django_db

SECRET = "sk-test-never-shown-0123456789"


@pytest.fixture
def provider() -> Provider:
    return Provider.objects.create(name="primary", kind="openai", base_url="https://api.example.com/v1")


@pytest.fixture
def models(provider: Provider) -> tuple[LanguageModel, LanguageModel]:
    big = LanguageModel.objects.create(name="big", provider=provider, upstream="big-1", capabilities=["chat"])
    small = LanguageModel.objects.create(name="small", provider=provider, upstream="small-1", capabilities=["chat"])
    Fallback.objects.create(model=big, target=small, position=0)
    return big, small


def provider_form(provider: Provider, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": provider.name,
        "kind": provider.kind,
        "base_url": provider.base_url,
        "enabled": "on",
        "api_key_env": provider.api_key_env,
        "api_key": "",
        "timeout_s": provider.timeout_s,
        "max_retries": provider.max_retries,
        "retry_base_s": provider.retry_base_s,
        "breaker_failure_rate": provider.breaker_failure_rate,
        "breaker_window": provider.breaker_window,
        "breaker_open_s": provider.breaker_open_s,
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("page", ["changelist", "add"])
def test_registry_list_and_add_pages_load_for_a_superuser(admin_client, models, page):
    for model in ("provider", "languagemodel"):
        response = admin_client.get(reverse(f"admin:orchestration_{model}_{page}"))
        assert response.status_code == 200


def test_the_admin_says_switchyard(admin_client):
    response = admin_client.get(reverse("admin:index"))

    assert "Switchyard administration" in response.content.decode()


def test_a_model_page_shows_its_fallbacks_in_order(admin_client, models):
    big, _small = models
    third = LanguageModel.objects.create(name="third", provider=big.provider, upstream="t")
    Fallback.objects.create(model=big, target=third, position=1)

    listing = admin_client.get(reverse("admin:orchestration_languagemodel_changelist")).content.decode()
    page = admin_client.get(reverse("admin:orchestration_languagemodel_change", args=[big.pk]))

    assert page.status_code == 200
    assert "small → third" in listing


def test_a_secret_entered_in_the_form_is_stored_encrypted_and_never_shown(admin_client, provider):
    url = reverse("admin:orchestration_provider_change", args=[provider.pk])

    response = admin_client.post(url, provider_form(provider, api_key=SECRET))

    assert response.status_code == 302, response.content.decode()[:2000]
    provider.refresh_from_db()
    assert secret_decrypt(provider.api_key_encrypted) == SECRET
    for page in (url, reverse("admin:orchestration_provider_changelist")):
        html = admin_client.get(page).content.decode()
        assert SECRET not in html
        assert provider.api_key_encrypted not in html
        assert "stored encrypted" in html


def test_saving_without_a_new_secret_keeps_the_stored_one(admin_client, provider):
    provider.api_key_encrypted = secret_encrypt(SECRET)
    provider.save()

    admin_client.post(
        reverse("admin:orchestration_provider_change", args=[provider.pk]), provider_form(provider, timeout_s=12)
    )

    provider.refresh_from_db()
    assert provider.timeout_s == 12
    assert secret_decrypt(provider.api_key_encrypted) == SECRET


def test_the_stored_secret_can_be_removed(admin_client, provider):
    provider.api_key_encrypted = secret_encrypt(SECRET)
    provider.save()

    admin_client.post(
        reverse("admin:orchestration_provider_change", args=[provider.pk]), provider_form(provider, clear_api_key="on")
    )

    provider.refresh_from_db()
    assert provider.api_key_encrypted == ""


def test_a_secret_from_the_environment_shows_only_the_variable_and_whether_it_is_set(admin_client, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_TEST_PROVIDER_API_KEY", SECRET)
    provider = Provider.objects.create(name="envkey", kind="openai", api_key_env="SWITCHYARD_TEST_PROVIDER_API_KEY")

    html = admin_client.get(reverse("admin:orchestration_provider_change", args=[provider.pk])).content.decode()

    assert "$SWITCHYARD_TEST_PROVIDER_API_KEY (set)" in html
    assert SECRET not in html


def test_a_fallback_to_the_model_itself_is_refused_with_a_message(admin_client, models):
    big, small = models
    url = reverse("admin:orchestration_languagemodel_change", args=[big.pk])
    page = admin_client.get(url)
    data = {
        key: value
        for key, value in page.context["adminform"].form.initial.items()
        if key not in {"created_at", "updated_at"}
    }
    data.update(
        provider=big.provider.pk,
        capabilities='["chat"]',
        **{
            "fallbacks-TOTAL_FORMS": "1",
            "fallbacks-INITIAL_FORMS": "1",
            "fallbacks-0-id": str(big.fallbacks.get().pk),
            "fallbacks-0-model": str(big.pk),
            "fallbacks-0-position": "0",
            "fallbacks-0-target": str(big.pk),
        },
    )
    data = {key: value for key, value in data.items() if value is not None and key != "content_policy_fallback"}

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert "cannot fall back to itself" in response.content.decode()
    assert big.fallbacks.get().target == small


@pytest.fixture
def simulated(simulator) -> tuple[Provider, LanguageModel, LanguageModel]:
    provider = Provider.objects.create(name="sim", kind="simulator", base_url=f"{simulator.url}/v1", max_retries=0)
    chat = LanguageModel.objects.create(name="sim-chat", provider=provider, upstream="sim-chat", capabilities=["chat"])
    embed = LanguageModel.objects.create(
        name="sim-vectors", provider=provider, upstream="sim-vectors", capabilities=["embeddings"]
    )
    return provider, chat, embed


def run_action(admin_client, model: str, action: str, pks: list[int]) -> list[tuple[str, str]]:
    response = admin_client.post(
        reverse(f"admin:orchestration_{model}_changelist"),
        {"action": action, "_selected_action": [str(pk) for pk in pks]},
        follow=True,
    )
    assert response.status_code == 200
    return [(message.level_tag, message.message) for message in response.context["messages"]]


def test_test_connection_reports_what_the_provider_answered(admin_client, simulator, simulated):
    provider, _, _ = simulated
    simulator.configure("sim-chat", reply="OK")

    reported = run_action(admin_client, "provider", "test_connection", [provider.pk])

    [(level, text)] = reported
    assert level == "success"
    assert re.fullmatch(r"sim / sim-chat: answered 'OK' \(\d+ tokens in, 1 out\)", text), text
    assert simulator.stats("sim-chat")["completed"] == 1


def test_test_connection_reports_a_failure_with_its_kind_and_status(admin_client, simulator, simulated):
    provider, _, _ = simulated
    simulator.configure("sim-chat", error_status=401)

    [(level, text)] = run_action(admin_client, "provider", "test_connection", [provider.pk])

    assert level == "error"
    assert "sim / sim-chat: failed, auth (HTTP 401)" in text


def test_test_connection_on_an_embedding_model_asks_for_a_vector(admin_client, simulator, simulated):
    _, _, embed = simulated

    [(level, text)] = run_action(admin_client, "languagemodel", "test_connection", [embed.pk])

    assert level == "success"
    assert "sim / sim-vectors: answered with a" in text and "dimensional embedding" in text


def test_test_connection_of_a_provider_without_models_says_so(admin_client):
    empty = Provider.objects.create(name="empty", kind="openai")

    assert run_action(admin_client, "provider", "test_connection", [empty.pk]) == [
        ("error", "empty: no model is registered on it to test with")
    ]


def test_a_secret_variable_outside_the_allowlist_is_refused_naming_the_rule(admin_client, provider):
    url = reverse("admin:orchestration_provider_change", args=[provider.pk])
    response = admin_client.post(url, provider_form(provider, api_key_env="REDIS_URL"))
    assert response.status_code == 200  # the form again, with the error
    assert (
        "REDIS_URL may not hold a provider secret: the name must match &#x27;*_API_KEY&#x27;"
        in response.content.decode()
    )
    provider.refresh_from_db()
    assert provider.api_key_env == ""


def test_a_row_naming_another_variable_reads_no_secret_from_it(monkeypatch, provider):
    from orchestration.registry import provider_secret

    monkeypatch.setenv("REDIS_URL_SECRET_LOOKALIKE", "redis://secret@host/0")
    provider.api_key_env = "REDIS_URL_SECRET_LOOKALIKE"  # saved before the allowlist existed
    assert provider_secret(provider) == ""


def test_a_model_page_shows_the_threshold_its_error_budget_gives_and_the_measured_hit_rate(admin_client, models):
    big, _ = models
    big.cache_semantic = True
    big.cache_semantic_error_budget = 0.01
    big.save()

    page = admin_client.get(reverse("admin:orchestration_languagemodel_change", args=[big.pk])).content.decode()

    assert "from an error budget of 1.00%" in page
    assert re.search(r"on held-out labelled pairs: \d+% of paraphrases served", page)


def test_a_raw_threshold_set_in_the_admin_replaces_the_budget(admin_client, models):
    big, _ = models
    big.cache_semantic_threshold = 0.97
    big.save()

    page = admin_client.get(reverse("admin:orchestration_languagemodel_change", args=[big.pk])).content.decode()

    assert "0.97 (raw threshold)" in page


# --- the numbers config as code refuses, the admin refuses too ---------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout_s", "0"),
        ("timeout_s", "-5"),
        ("retry_base_s", "-1"),
        ("max_retries", "500"),
        ("breaker_failure_rate", "2"),
        ("breaker_failure_rate", "-1"),
        ("breaker_window", "0"),
        ("breaker_open_s", "-30"),
    ],
)
def test_a_provider_number_a_file_could_not_hold_is_refused(admin_client, provider, field, value):
    """A timeout of 0 saved here made every streamed call through the provider fail at once."""
    url = reverse("admin:orchestration_provider_change", args=[provider.pk])

    response = admin_client.post(url, provider_form(provider, **{field: value}))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field]
    provider.refresh_from_db()
    assert str(getattr(provider, field)) != value


def test_what_the_admin_saves_loads_back_from_its_dump(admin_client, provider, tmp_path):
    from orchestration.llmconfig import config_dump, config_load

    url = reverse("admin:orchestration_provider_change", args=[provider.pk])
    admin_client.post(url, provider_form(provider, timeout_s="0", breaker_window="0"))
    dump = tmp_path / "registry.toml"
    dump.write_text(config_dump())

    config_load(dump)  # raises ConfigError on a value the admin let through


def model_form(model: LanguageModel, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": model.name,
        "provider": model.provider_id,
        "upstream": model.upstream,
        "description": model.description,
        "enabled": "on",
        "routing_strategy": model.routing_strategy,
        "input_per_mtok": model.input_per_mtok,
        "output_per_mtok": model.output_per_mtok,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "deadline_s": "",
        "tokens_per_second": model.tokens_per_second,
        "capabilities": '["chat"]',
        "content_policy_fallback": "",
        "cache_exact_enabled": "on",
        "cache_exact_ttl_s": model.cache_exact_ttl_s,
        "cache_semantic_error_budget": model.cache_semantic_error_budget,
        "cache_semantic_threshold": "",
        "cache_semantic_learned_floor": model.cache_semantic_learned_floor,
        "cache_semantic_max_turns": model.cache_semantic_max_turns,
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0",
        "fallbacks-TOTAL_FORMS": "0",
        "fallbacks-INITIAL_FORMS": "0",
    }
    links = list(model.fallbacks.order_by("position"))
    data["fallbacks-TOTAL_FORMS"] = data["fallbacks-INITIAL_FORMS"] = str(len(links))
    for index, link in enumerate(links):
        data.update(
            {
                f"fallbacks-{index}-id": link.pk,
                f"fallbacks-{index}-model": model.pk,
                f"fallbacks-{index}-position": link.position,
                f"fallbacks-{index}-target": link.target_id,
            }
        )
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("field", "value"),
    [("tokens_per_second", "0"), ("deadline_s", "-1"), ("context_window", "0"), ("input_per_mtok", "-1")],
)
def test_a_model_number_a_file_could_not_hold_is_refused(admin_client, models, field, value):
    big, _small = models
    url = reverse("admin:orchestration_languagemodel_change", args=[big.pk])

    response = admin_client.post(url, model_form(big, **{field: value}))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field]


@pytest.fixture
def two_fallbacks(models):
    """``big`` falls back to ``small`` (position 0), then to ``third`` (position 1)."""
    big, _small = models
    third = LanguageModel.objects.create(name="third", provider=big.provider, upstream="t")
    Fallback.objects.create(model=big, target=third, position=1)
    return big


def test_two_fallbacks_swap_places_in_one_save(admin_client, two_fallbacks):
    big = two_fallbacks
    url = reverse("admin:orchestration_languagemodel_change", args=[big.pk])

    response = admin_client.post(url, model_form(big, **{"fallbacks-0-position": "1", "fallbacks-1-position": "0"}))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert [link.target.name for link in big.fallbacks.order_by("position")] == ["third", "small"]


def test_a_fallback_moves_onto_the_place_of_one_deleted_in_the_same_save(admin_client, two_fallbacks):
    big = two_fallbacks
    url = reverse("admin:orchestration_languagemodel_change", args=[big.pk])

    response = admin_client.post(url, model_form(big, **{"fallbacks-0-position": "1", "fallbacks-1-DELETE": "on"}))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert [(link.target.name, link.position) for link in big.fallbacks.all()] == [("small", 1)]


def test_a_second_chat_default_is_refused_in_words_an_operator_reads(admin_client, models):
    big, small = models
    small.chat_default = True
    small.save()
    url = reverse("admin:orchestration_languagemodel_change", args=[big.pk])

    response = admin_client.post(url, model_form(big, chat_default="on"))

    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.non_field_errors())
    assert "Another model is already the chat's default" in errors and "violated" not in errors

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from orchestration.config.demo import demo_documents, ollama_models
from orchestration.llmconfig import ConfigError, config_documents_load, config_dump, config_load
from orchestration.models import Fallback, LanguageModel, PromptTemplate, Provider
from orchestration.secrets import secret_encrypt
from tests.support import free_port

pytestmark = pytest.mark.django_db

VALID = """\
[providers.primary]
kind = "openai"
base_url = "http://127.0.0.1:9100/v1"
api_key_env = "OPENAI_API_KEY"
timeout_s = 30
max_retries = 2
breaker = { failure_rate = 0.5, window = 10, open_s = 30 }

[models."gpt-4o"]
provider = "primary"
upstream = "gpt-4o-2024-08-06"
input_per_mtok = 2.50
output_per_mtok = 10.00
context_window = 128000
fallbacks = ["gpt-4o-mini"]
cache = { exact_ttl_s = 3600, semantic = false, semantic_threshold = 0.95 }

[models."gpt-4o-mini"]
provider = "primary"
upstream = "gpt-4o-mini"
input_per_mtok = 0.15
output_per_mtok = 0.60
"""


def write(tmp_path: Path, text: str, name: str = "registry.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def statuses(report) -> dict[str, str]:
    return {f"{change.kind} {change.name}": change.status for change in report.changes}


def test_the_contract_example_loads_with_its_fallback_chain(tmp_path):
    report = config_load(write(tmp_path, VALID))

    assert statuses(report) == {
        "provider primary": "created",
        "model gpt-4o": "created",
        "model gpt-4o-mini": "created",
    }
    model = LanguageModel.objects.get(name="gpt-4o")
    assert model.provider.name == "primary"
    assert model.input_per_mtok == Decimal("2.5")
    assert [f.target.name for f in model.fallbacks.order_by("position")] == ["gpt-4o-mini"]
    assert Provider.objects.get(name="primary").api_key_env == "OPENAI_API_KEY"


def test_loading_the_same_file_again_reports_every_entry_unchanged(tmp_path):
    path = write(tmp_path, VALID)
    config_load(path)

    report = config_load(path)

    assert set(statuses(report).values()) == {"unchanged"}
    assert not report.changed
    assert report.summary() == "0 created, 0 updated, 3 unchanged"


def test_a_changed_value_is_reported_as_updated_naming_its_key(tmp_path):
    config_load(write(tmp_path, VALID))
    changed = VALID.replace("output_per_mtok = 10.00", "output_per_mtok = 12.00").replace("window = 10", "window = 20")

    report = config_load(write(tmp_path, changed))

    by_name = {change.name: change for change in report.changes}
    assert by_name["gpt-4o"].status == "updated"
    assert by_name["gpt-4o"].details == ("output_per_mtok",)
    assert by_name["primary"].details == ("breaker.window",)
    assert by_name["gpt-4o-mini"].status == "unchanged"
    assert LanguageModel.objects.get(name="gpt-4o").output_per_mtok == Decimal("12")


def test_a_key_left_out_goes_back_to_its_default(tmp_path):
    config_load(write(tmp_path, VALID))

    config_load(write(tmp_path, VALID.replace('fallbacks = ["gpt-4o-mini"]\n', "").replace("max_retries = 2", "")))

    assert not Fallback.objects.exists()
    assert Provider.objects.get(name="primary").max_retries == 2


def test_providers_and_models_not_in_the_file_are_left_alone(tmp_path):
    other = Provider.objects.create(name="other", kind="simulator")
    LanguageModel.objects.create(name="keep-me", provider=other, upstream="x")

    config_load(write(tmp_path, VALID))

    assert LanguageModel.objects.filter(name="keep-me", provider__name="other").exists()


def test_fallbacks_follow_the_order_the_file_gives(tmp_path):
    text = VALID + '\n[models."third"]\nprovider = "primary"\nupstream = "third"\n'
    chain_line = 'fallbacks = ["gpt-4o-mini"]'
    config_load(write(tmp_path, text.replace(chain_line, 'fallbacks = ["third", "gpt-4o-mini"]')))
    report = config_load(write(tmp_path, text.replace(chain_line, 'fallbacks = ["gpt-4o-mini", "third"]')))

    chain = Fallback.objects.filter(model__name="gpt-4o").order_by("position").values_list("target__name", flat=True)
    assert list(chain) == ["gpt-4o-mini", "third"]
    assert statuses(report)["model gpt-4o"] == "updated"


def test_dump_then_load_is_a_round_trip_that_changes_nothing(tmp_path):
    config_load(write(tmp_path, VALID))
    secret_only = Provider.objects.create(name="stored", kind="anthropic", api_key_encrypted=secret_encrypt("sk-x"))
    model = LanguageModel.objects.create(
        name="odd name:1b", provider=secret_only, upstream="odd", deadline_s=12.5, capabilities=["chat", "tools"]
    )
    LanguageModel.objects.filter(name="gpt-4o").update(content_policy_fallback=model)
    config_load(
        write(
            tmp_path,
            '[prompts.support]\ndescription = "Helpdesk"\nsystem_prompt = """You help {customer}.\n'
            'Quote \'policies\' and \\"rules\\".\n"""\n'
            'variables = ["customer"]\ndefault_model = "gpt-4o"\n'
            'parameters = { temperature = 0.2, max_tokens = 300, stop = ["END"], extra = { a = true } }\n',
            "prompts.toml",
        )
    )

    dumped = config_dump()
    report = config_load(write(tmp_path, dumped, "dump.toml"))

    assert set(statuses(report).values()) == {"unchanged"}, statuses(report)
    assert config_dump() == dumped
    assert "sk-x" not in dumped and secret_only.api_key_encrypted not in dumped
    assert "stored encrypted" in dumped


def test_prompts_get_a_new_version_only_when_their_content_changes(tmp_path):
    config_load(write(tmp_path, VALID))
    prompt = '[prompts.greeter]\nsystem_prompt = "Greet {name}."\nvariables = ["name"]\ndefault_model = "gpt-4o"\n'

    first = config_load(write(tmp_path, prompt, "p.toml"))
    again = config_load(write(tmp_path, prompt, "p.toml"))
    changed = config_load(write(tmp_path, prompt.replace("Greet", "Welcome"), "p.toml"))

    assert statuses(first)["prompt greeter"] == "created"
    assert statuses(again)["prompt greeter"] == "unchanged"
    assert changed.changes[0].details == ("version 2",)
    template = PromptTemplate.objects.get(name="greeter")
    assert list(template.versions.order_by("version").values_list("system_prompt", flat=True)) == [
        "Greet {name}.",
        "Welcome {name}.",
    ]


REFUSALS = [
    pytest.param(
        VALID.replace("max_retries = 2", "max_retries = 2\nretries = 3"),
        ":7: providers.primary.retries: unknown key",
        id="unknown key",
    ),
    pytest.param(
        VALID.replace("timeout_s = 30", 'timeout_s = "thirty"'),
        ":5: providers.primary.timeout_s: must be a number",
        id="wrong type",
    ),
    pytest.param(
        VALID.replace('kind = "openai"', 'kind = "openia"'),
        ":2: providers.primary.kind: 'openia' is not one of",
        id="bad kind",
    ),
    pytest.param(
        VALID.replace('provider = "primary"\nupstream = "gpt-4o-mini"', 'provider = "nowhere"\nupstream = "mini"'),
        ":19: models.gpt-4o-mini.provider: names the provider 'nowhere'",
        id="unknown provider",
    ),
    pytest.param(
        VALID.replace('fallbacks = ["gpt-4o-mini"]', 'fallbacks = ["gpt-5-mini"]'),
        ":15: models.gpt-4o.fallbacks: names the fallback model 'gpt-5-mini'",
        id="unknown fallback model",
    ),
    pytest.param(
        VALID.replace("input_per_mtok = 0.15", "input_per_mtok = -0.15"),
        ":21: models.gpt-4o-mini.input_per_mtok: must not be negative",
        id="negative price",
    ),
    pytest.param(
        VALID.replace("open_s = 30 }", "open_s = 30, failure = 1 }"),
        ":7: providers.primary.breaker.failure: unknown key",
        id="unknown key in an inline table",
    ),
    pytest.param(
        VALID.replace('upstream = "gpt-4o-mini"\n', ""),
        ":18: models.gpt-4o-mini.upstream: is required",
        id="missing required key",
    ),
    pytest.param(
        VALID.replace("context_window = 128000", "context_window = 128000.5"),
        ":14: models.gpt-4o.context_window: must be a whole number, got 128000.5",
        id="float where a count belongs",
    ),
    pytest.param(VALID + "\n[modles.x]\n", ":24: modles: unknown key", id="unknown section"),
    pytest.param(VALID.replace("timeout_s = 30", "timeout_s = = 30"), ":5: invalid TOML", id="malformed TOML"),
]


@pytest.mark.parametrize(("text", "expected"), REFUSALS)
def test_a_bad_file_is_refused_naming_file_line_and_key_and_nothing_is_loaded(tmp_path, text, expected):
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as refused:
        config_load(path)

    message = str(refused.value)
    assert str(path) in message
    assert expected in message, message
    assert not Provider.objects.exists()
    assert not LanguageModel.objects.exists()


def test_every_problem_of_a_file_is_listed_at_once(tmp_path):
    text = VALID.replace('kind = "openai"', 'kind = "nope"').replace("input_per_mtok = 0.15", "input_per_mtok = -1")

    with pytest.raises(ConfigError) as refused:
        config_load(write(tmp_path, text))

    assert [problem.path[-1] for problem in refused.value.problems] == ["kind", "input_per_mtok"]


def test_a_secret_in_the_file_is_refused_pointing_to_api_key_env(tmp_path):
    with pytest.raises(ConfigError, match=r"providers.primary.api_key: secrets never go in a config file"):
        config_load(write(tmp_path, VALID.replace('api_key_env = "OPENAI_API_KEY"', 'api_key = "sk-live-123"')))


def test_a_failure_in_a_later_file_leaves_earlier_files_unapplied(tmp_path):
    from orchestration.llmconfig import config_read

    good = config_read(write(tmp_path, VALID, "good.toml"))
    bad = config_read(write(tmp_path, '[models.x]\nprovider = "primary"\nupstream = "x"\ncolour = 1\n', "bad.toml"))

    with pytest.raises(ConfigError, match=r"bad.toml:4: models.x.colour"):
        config_documents_load([good, bad])

    assert not Provider.objects.exists()


def test_a_dry_run_reports_changes_without_making_them(tmp_path):
    out = StringIO()

    call_command("llmconfig", "load", "--dry-run", str(write(tmp_path, VALID)), stdout=out)

    assert "provider primary: created" in out.getvalue()
    assert "Dry run" in out.getvalue()
    assert not Provider.objects.exists()


def test_the_command_prints_a_report_and_refuses_bad_files_with_an_error(tmp_path):
    out = StringIO()
    call_command("llmconfig", "load", str(write(tmp_path, VALID)), stdout=out)
    assert "model gpt-4o: created" in out.getvalue()
    assert "3 created, 0 updated, 0 unchanged" in out.getvalue()

    with pytest.raises(CommandError, match=r"nothing was loaded:\n.*:2: providers.primary.kind"):
        call_command("llmconfig", "load", str(write(tmp_path, VALID.replace('"openai"', '"x"'))), stdout=StringIO())


def test_the_command_dumps_what_load_accepts(tmp_path):
    call_command("llmconfig", "load", str(write(tmp_path, VALID)), stdout=StringIO())
    out = StringIO()

    call_command("llmconfig", "dump", stdout=out)

    assert '[models."gpt-4o"]' in out.getvalue()
    assert not config_load(write(tmp_path, out.getvalue(), "dump.toml")).changed


class _FakeOllama(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"models": [{"name": "llama3.2:3b"}, {"name": "nomic-embed-text:latest"}]}).encode()
        self.send_response(200 if self.path == "/api/tags" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ollama_url():
    server = HTTPServer(("127.0.0.1", 0), _FakeOllama)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_demo_registers_simulator_models_with_prices_and_a_fallback_chain():
    nowhere = f"http://127.0.0.1:{free_port()}"

    report = config_documents_load(demo_documents(environ={}, ollama_url=nowhere))

    assert report.count("created") == len(report.changes)
    assert set(Provider.objects.values_list("kind", flat=True)) == {"simulator"}
    small = LanguageModel.objects.get(name="sim-small")
    assert small.input_per_mtok > 0 and small.output_per_mtok > 0
    assert list(small.fallbacks.values_list("target__name", flat=True))
    assert "embeddings" in LanguageModel.objects.get(name="sim-embed").capabilities
    assert not config_documents_load(demo_documents(environ={}, ollama_url=nowhere)).changed


def test_the_demo_adds_hosted_providers_whose_key_is_set_and_a_local_ollama(ollama_url):
    environ = {"OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "y", "GEMINI_API_KEY": "z"}

    config_documents_load(demo_documents(environ=environ, ollama_url=ollama_url))

    providers = dict(Provider.objects.values_list("name", "kind"))
    assert providers["openai"] == "openai"
    assert providers["anthropic"] == "anthropic"
    assert providers["gemini"] == "gemini"
    assert providers["ollama"] == "openai-compatible"
    assert Provider.objects.get(name="openai").api_key_env == "OPENAI_API_KEY"
    assert {"gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "gemini-flash", "gemini-pro"} <= set(
        LanguageModel.objects.values_list("name", flat=True)
    )
    assert LanguageModel.objects.get(name="llama3.2:3b").provider.base_url == f"{ollama_url}/v1"
    assert LanguageModel.objects.get(name="nomic-embed-text:latest").capabilities == ["embeddings"]


def test_the_demo_leaves_out_providers_whose_key_is_unset():
    documents = demo_documents(environ={"OPENAI_API_KEY": ""}, ollama_url=f"http://127.0.0.1:{free_port()}")

    assert [Path(d.source).name for d in documents] == ["demo.toml"]


def test_no_ollama_answering_costs_at_most_the_short_timeout():
    started = time.monotonic()

    assert ollama_models("http://10.255.255.1:11434", timeout_s=0.2) == []
    assert time.monotonic() - started < 2


def test_the_readme_example_config_loads(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]

    report = config_load(write(tmp_path, example))

    assert statuses(report) == {
        "provider primary": "created",
        "model gpt-4o": "created",
        "model gpt-4o-mini": "created",
        "prompt support": "created",
    }


def test_api_key_env_must_match_the_allowlist(tmp_path):
    with pytest.raises(ConfigError, match=r"providers.primary.api_key_env: 'REDIS_URL' may not hold a provider secret"):
        config_load(write(tmp_path, VALID.replace('api_key_env = "OPENAI_API_KEY"', 'api_key_env = "REDIS_URL"')))


def test_a_semantic_error_budget_loads_and_the_old_raw_threshold_still_works(tmp_path):
    faq = 'provider = "primary"\nupstream = "faq-1"\ncache = { semantic = true, semantic_error_budget = 0.005 }\n'
    text = VALID + '\n[models."faq"]\n' + faq
    config_load(write(tmp_path, text))

    budgeted = LanguageModel.objects.get(name="faq")
    assert (budgeted.cache_semantic_error_budget, budgeted.cache_semantic_threshold) == (0.005, None)
    raw = LanguageModel.objects.get(name="gpt-4o")
    assert (raw.cache_semantic_error_budget, raw.cache_semantic_threshold) == (0.01, 0.95)
    assert "semantic_error_budget = 0.005" in config_dump()


@pytest.mark.parametrize("budget", ["0", "0.9", '"1%"'])
def test_an_error_budget_outside_its_range_is_refused_naming_the_key(tmp_path, budget):
    text = VALID.replace("semantic_threshold = 0.95", f"semantic_error_budget = {budget}")
    with pytest.raises(ConfigError) as refused:
        config_load(write(tmp_path, text))
    assert "cache.semantic_error_budget" in str(refused.value)
    assert not LanguageModel.objects.exists()

"""Config as code: the model registry as a TOML file (docs/api.md, "The model registry as code").

``config_load`` reads a file, validates all of it, and only then applies it inside one
transaction, so a bad file changes nothing. Each entry the file names is described completely:
a key left out takes its default, so loading the same file always gives the same registry.
Providers, models and prompts the file does not name are left alone (nothing is deleted).
Secrets never appear: a provider names the environment variable that holds its key.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models, transaction

from orchestration.models import Deployment, Fallback, LanguageModel, PromptTemplate, PromptVersion, Provider
from orchestration.registry import snapshot_invalidate
from orchestration.secrets import api_key_env_allowed, api_key_env_rule

SECTIONS = ("providers", "models", "prompts")
_MISSING = object()


# --- problems -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    path: tuple[str, ...]
    message: str
    line: int | None = None

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        key = _dotted(self.path)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


class ConfigError(Exception):
    """A config file that cannot be loaded; ``problems`` lists every reason found."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(problem.render(source) for problem in problems))


class _Bad(ValueError):
    pass


def _dotted(path: Iterable[str]) -> str:
    return ".".join(part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part) for part in path)


# --- value checks ---------------------------------------------------------------------------

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    return _TYPE_NAMES.get(type(value), f"a {type(value).__name__}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(*, gt: float | None = None, ge: float | None = None, le: float | None = None) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if not _is_number(value) or not math.isfinite(value):
            raise _Bad(f"must be a number, got {value!r}")
        if gt is not None and value <= gt:
            raise _Bad(f"must be greater than {gt:g}, got {value!r}")
        if ge is not None and value < ge:
            raise _Bad(f"must not be below {ge:g}, got {value!r}")
        if le is not None and value > le:
            raise _Bad(f"must be at most {le:g}, got {value!r}")
        return float(value)

    return check


def _integer(*, ge: int = 0, le: int = 2_147_483_647) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Bad(f"must be a whole number, got {value!r}")
        if not ge <= value <= le:
            raise _Bad(f"must be between {ge} and {le}, got {value!r}")
        return value

    return check


def _price(value: Any) -> Decimal:
    if not _is_number(value) or not math.isfinite(value):
        raise _Bad(f"must be a number (USD per million tokens), got {value!r}")
    amount = Decimal(str(value))
    if amount < 0:
        raise _Bad(f"must not be negative, got {value!r}")
    if amount >= 10**8:
        raise _Bad(f"is too large, got {value!r}")
    if -int(amount.as_tuple().exponent) > 4:
        raise _Bad(f"has more than 4 decimal places, got {value!r}")
    return amount.quantize(Decimal("0.0001"))


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"must be true or false, got {value!r}")
    return value


def _string(*, max_length: int, pattern: str | None = None, hint: str = "") -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _Bad(f"must be a string, got {value!r}")
        if len(value) > max_length:
            raise _Bad(f"must be at most {max_length} characters long")
        if pattern is not None and value and not re.fullmatch(pattern, value):
            raise _Bad(f"{value!r} is not valid{hint}")
        return value

    return check


def _api_key_env(value: Any) -> str:
    name = _string(max_length=128, pattern=_ENV_NAME, hint=" as a variable name")(value)
    if name and not api_key_env_allowed(name):
        raise _Bad(f"{name!r} may not hold a provider secret: {api_key_env_rule()} (SWITCHYARD_API_KEY_ENV_ALLOW)")
    return name


def _choice(choices: Iterable[str]) -> Callable[[Any], str]:
    allowed = tuple(choices)

    def check(value: Any) -> str:
        if value not in allowed:
            raise _Bad(f"{value!r} is not one of: {', '.join(allowed)}")
        return str(value)

    return check


def _url(value: Any) -> str:
    text = _string(max_length=500)(value)
    if text:
        try:
            URLValidator(schemes=["http", "https"])(text)
        except ValidationError:
            raise _Bad(f"{text!r} is not an http(s) URL") from None
    return text


def _string_list(item: Callable[[Any], str]) -> Callable[[Any], list[str]]:
    def check(value: Any) -> list[str]:
        if not isinstance(value, list):
            raise _Bad(f"must be an array of strings, got {value!r}")
        items = [item(element) for element in value]
        duplicates = sorted({element for element in items if items.count(element) > 1})
        if duplicates:
            raise _Bad(f"lists {', '.join(map(repr, duplicates))} more than once")
        return items

    return check


def _json_table(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"must be a table, got {value!r}")
    _json_value(value)
    return value


def _json_value(value: Any) -> None:
    if isinstance(value, dict):
        for element in value.values():
            _json_value(element)
    elif isinstance(value, list):
        for element in value:
            _json_value(element)
    elif not isinstance(value, str | int | float | bool):
        raise _Bad(f"holds {_type_name(value)}, which is not JSON (use strings, numbers, booleans, arrays, tables)")


_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_SLUG = r"[A-Za-z0-9_-]+"
_MODEL_NAME = r"[^\s\x00-\x1f](?:[^\x00-\x1f]*[^\s\x00-\x1f])?"
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_model_name = _string(max_length=128, pattern=_MODEL_NAME, hint=" (no control characters, no surrounding spaces)")


# --- the schema: TOML key path -> model attribute ---------------------------------------------


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]
    attr: str
    check: Callable[[Any], Any]
    default: Any = None
    required: bool = False


def _default(model: type[models.Model], attr: str) -> Any:
    model_field = model._meta.get_field(attr)
    assert isinstance(model_field, models.Field)
    return model_field.get_default()


def _provider_fields() -> tuple[Field, ...]:
    def f(path: str, attr: str, check: Callable[[Any], Any], required: bool = False) -> Field:
        return Field(tuple(path.split(".")), attr, check, None if required else _default(Provider, attr), required)

    return (
        f("kind", "kind", _choice(Provider.Kind.values), required=True),
        f("base_url", "base_url", _url),
        f("api_key_env", "api_key_env", _api_key_env),
        f("timeout_s", "timeout_s", _number(gt=0, le=3600)),
        f("max_retries", "max_retries", _integer(ge=0, le=10)),
        f("retry_base_s", "retry_base_s", _number(ge=0, le=60)),
        f("enabled", "enabled", _boolean),
        f("breaker.failure_rate", "breaker_failure_rate", _number(gt=0, le=1)),
        f("breaker.window", "breaker_window", _integer(ge=1, le=10_000)),
        f("breaker.open_s", "breaker_open_s", _number(gt=0, le=86_400)),
        f("breaker.per_model", "breaker_per_model", _boolean),
    )


def _model_fields() -> tuple[Field, ...]:
    def f(path: str, attr: str, check: Callable[[Any], Any], required: bool = False) -> Field:
        return Field(tuple(path.split(".")), attr, check, None if required else _default(LanguageModel, attr), required)

    return (
        # Required unless the model lists its deployments (checked with the references).
        Field(("provider",), "provider", _string(max_length=64)),
        Field(("upstream",), "upstream", _string(max_length=200, pattern=r"\S+", hint=" (no spaces)")),
        Field(("deployments",), "deployments", lambda value: _deployments(value), default=[]),
        f("routing", "routing_strategy", _choice(LanguageModel.Strategy.values)),
        f("description", "description", _string(max_length=300)),
        f("input_per_mtok", "input_per_mtok", _price),
        f("output_per_mtok", "output_per_mtok", _price),
        f("context_window", "context_window", _integer(ge=1)),
        f("max_output_tokens", "max_output_tokens", _integer(ge=1)),
        f("capabilities", "capabilities", _string_list(_string(max_length=32, pattern=_IDENTIFIER))),
        f("deadline_s", "deadline_s", _number(gt=0, le=3600)),
        f("tokens_per_second", "tokens_per_second", _number(gt=0)),
        Field(("fallbacks",), "fallbacks", _string_list(_model_name), default=[]),
        Field(("content_policy_fallback",), "content_policy_fallback", _model_name),
        f("enabled", "enabled", _boolean),
        f("chat_default", "chat_default", _boolean),
        f("cache.exact", "cache_exact_enabled", _boolean),
        f("cache.exact_ttl_s", "cache_exact_ttl_s", _integer(ge=0)),
        f("cache.semantic", "cache_semantic", _boolean),
        f("cache.semantic_error_budget", "cache_semantic_error_budget", _number(ge=0.0001, le=0.5)),
        f("cache.semantic_threshold", "cache_semantic_threshold", _number(gt=0, le=1)),
        f("cache.semantic_max_turns", "cache_semantic_max_turns", _integer(ge=1, le=100)),
    )


# One deployment's keys: TOML key -> (Deployment attribute, check, default).
_DEPLOYMENT_KEYS: dict[str, tuple[str, Callable[[Any], Any], Any]] = {
    "name": ("name", _string(max_length=64, pattern=_SLUG, hint=" (letters, digits, - and _ only)"), None),
    "provider": ("provider", _string(max_length=64), _MISSING),
    "upstream": ("upstream", _string(max_length=200, pattern=r"\S+", hint=" (no spaces)"), _MISSING),
    "weight": ("weight", _integer(ge=0, le=1_000_000), 1),
    "rpm": ("rpm_limit", _integer(ge=1), None),
    "tpm": ("tpm_limit", _integer(ge=1), None),
    "region": ("region", _string(max_length=64), ""),
    "tag": ("tag", _string(max_length=64), ""),
    "input_per_mtok": ("input_per_mtok", _price, None),
    "output_per_mtok": ("output_per_mtok", _price, None),
    "enabled": ("enabled", _boolean, True),
}


def _deployment(index: int, table: Any) -> dict[str, Any]:
    where = f"deployment {index + 1}"
    if not isinstance(table, dict):
        raise _Bad(f"{where} must be a table, got {_type_name(table)}")
    for key in table:
        if key not in _DEPLOYMENT_KEYS:
            raise _Bad(f"{where}: {_unknown_key_message(key, _DEPLOYMENT_KEYS)}")
    clean: dict[str, Any] = {"position": index}
    for key, (attr, check, default) in _DEPLOYMENT_KEYS.items():
        if key not in table:
            if default is _MISSING:
                raise _Bad(f"{where}: {key} is required")
            clean[attr] = default
            continue
        try:
            clean[attr] = check(table[key])
        except _Bad as error:
            raise _Bad(f"{where}: {key} {error}") from None
    clean["name"] = clean["name"] or clean["provider"]
    return clean


def _deployments(value: Any) -> list[dict[str, Any]]:
    """``[[models.NAME.deployments]]`` tables; an empty list is the one-deployment case."""
    if not isinstance(value, list):
        raise _Bad(f"must be an array of tables ([[models.NAME.deployments]]), got {_type_name(value)}")
    clean = [_deployment(index, table) for index, table in enumerate(value)]
    names = [deployment["name"] for deployment in clean]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise _Bad(f"names deployment {', '.join(map(repr, duplicates))} more than once (name them apart)")
    return clean


def _prompt_fields() -> tuple[Field, ...]:
    return (
        Field(("description",), "description", _string(max_length=300), default=""),
        Field(("system_prompt",), "system_prompt", _string(max_length=100_000), required=True),
        Field(("variables",), "variables", _string_list(_string(max_length=64, pattern=_IDENTIFIER)), default=[]),
        Field(("default_model",), "default_model", _model_name),
        Field(("parameters",), "parameters", _json_table, default={}),
    )


_NAME_CHECKS: dict[str, Callable[[Any], str]] = {
    "providers": _string(max_length=64, pattern=_SLUG, hint=" (letters, digits, - and _ only)"),
    "models": _model_name,
    "prompts": _string(max_length=100, pattern=_SLUG, hint=" (letters, digits, - and _ only)"),
}
_SECRET_KEYS = {"api_key", "key", "secret", "token", "password", "api_key_encrypted"}


def _schema(section: str) -> tuple[Field, ...]:
    return {"providers": _provider_fields, "models": _model_fields, "prompts": _prompt_fields}[section]()


# The numbers of a provider or a model, which the admin's forms check with the same bounds as a file.
_NUMBERS = {
    "providers": frozenset(
        {"timeout_s", "max_retries", "retry_base_s", "breaker_failure_rate", "breaker_window", "breaker_open_s"}
    ),
    "models": frozenset(
        {
            "input_per_mtok",
            "output_per_mtok",
            "context_window",
            "max_output_tokens",
            "deadline_s",
            "tokens_per_second",
            "cache_exact_ttl_s",
            "cache_semantic_error_budget",
            "cache_semantic_threshold",
            "cache_semantic_max_turns",
        }
    ),
}


def registry_number_problems(section: str, values: Mapping[str, Any]) -> dict[str, str]:
    """What a load would refuse among the numbers of one provider or model (``section``
    "providers" or "models"; ``values`` by model attribute, None and absent ones skipped), as
    attribute -> sentence. The admin asks this, so what it saves is what a file may say: the
    registry ``llmconfig dump`` writes loads again, and no value the gateway cannot use gets in."""
    problems: dict[str, str] = {}
    for spec in _schema(section):
        value = values.get(spec.attr)
        if spec.attr not in _NUMBERS[section] or value is None:
            continue
        try:
            spec.check(float(value) if isinstance(value, Decimal) else value)
        except _Bad as error:
            text = str(error)
            problems[spec.attr] = f"{text[:1].upper()}{text[1:]}."
    return problems


# --- reading and validating -------------------------------------------------------------------


@dataclass
class ConfigDocument:
    """A parsed config file: where it came from, its text (for line numbers) and its data."""

    source: str
    text: str
    data: dict[str, Any]


@dataclass
class ConfigPlan:
    """A validated document: for each section, entry name -> model attribute -> clean value."""

    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    prompts: dict[str, dict[str, Any]] = field(default_factory=dict)


def config_parse(text: str, *, source: str) -> ConfigDocument:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = getattr(error, "lineno", None) or _decode_error_line(str(error))
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)$", "", str(error))
        raise ConfigError(source, [ConfigProblem((), f"invalid TOML: {message}", line)]) from None
    return ConfigDocument(source=source, text=text, data=data)


def config_read(path: str | Path) -> ConfigDocument:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), [ConfigProblem((), f"cannot be read: {error}")]) from None
    return config_parse(text, source=str(path))


def _decode_error_line(message: str) -> int | None:
    found = re.search(r"at line (\d+)", message)
    return int(found.group(1)) if found else None


def config_validate(document: ConfigDocument, *, also_known: ConfigPlan | None = None) -> ConfigPlan:
    """Check every key and value and every reference; raise ``ConfigError`` listing all problems.

    References may name what this document defines, what is registered already, and the names
    in ``also_known`` (other documents loaded in the same transaction).
    """
    problems: list[ConfigProblem] = []
    plan = ConfigPlan()
    for key in document.data:
        if key not in SECTIONS:
            problems.append(ConfigProblem((key,), _unknown_key_message(key, SECTIONS)))
    for section in SECTIONS:
        setattr(plan, section, _validate_section(document.data.get(section, {}), section, problems))
    _check_references(plan, also_known or ConfigPlan(), problems)
    if problems:
        located = [ConfigProblem(p.path, p.message, p.line or _line_of(document.text, p.path)) for p in problems]
        raise ConfigError(document.source, located)
    return plan


def _validate_section(raw: Any, section: str, problems: list[ConfigProblem]) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        problems.append(ConfigProblem((section,), f"must be a table, got {_type_name(raw)}"))
        return {}
    clean: dict[str, dict[str, Any]] = {}
    fields = _schema(section)
    for name, entry in raw.items():
        path = (section, name)
        try:
            _NAME_CHECKS[section](name)
        except _Bad as error:
            problems.append(ConfigProblem(path, f"the name {error}"))
            continue
        if not isinstance(entry, dict):
            problems.append(ConfigProblem(path, f"must be a table, got {_type_name(entry)}"))
            continue
        clean[name] = _validate_entry(path, entry, fields, problems)
    return clean


def _validate_entry(
    path: tuple[str, ...], entry: dict[str, Any], fields: tuple[Field, ...], problems: list[ConfigProblem]
) -> dict[str, Any]:
    problems.extend(_unknown_keys(path, entry, fields))
    clean: dict[str, Any] = {}
    for spec in fields:
        value = _lookup(entry, spec.path)
        if value is _MISSING:
            if spec.required:
                problems.append(ConfigProblem(path + spec.path, "is required"))
            clean[spec.attr] = spec.default
            continue
        try:
            clean[spec.attr] = spec.check(value)
        except _Bad as error:
            problems.append(ConfigProblem(path + spec.path, str(error)))
    return clean


def _unknown_keys(path: tuple[str, ...], entry: dict[str, Any], fields: tuple[Field, ...]) -> list[ConfigProblem]:
    found: list[ConfigProblem] = []
    known = {spec.path[0] for spec in fields}
    groups = {spec.path[0] for spec in fields if len(spec.path) > 1}
    for key, value in entry.items():
        if key not in known:
            found.append(ConfigProblem((*path, key), _unknown_key_message(key, known)))
        elif key in groups and not isinstance(value, dict):
            found.append(ConfigProblem((*path, key), f"must be a table, got {_type_name(value)}"))
        elif key in groups:
            inner = {spec.path[1] for spec in fields if spec.path[0] == key}
            found.extend(
                ConfigProblem((*path, key, sub), _unknown_key_message(sub, inner)) for sub in value if sub not in inner
            )
    return found


def _unknown_key_message(key: str, known: Iterable[str]) -> str:
    if key in _SECRET_KEYS:
        return "secrets never go in a config file: name the environment variable with api_key_env"
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}; allowed: {', '.join(sorted(known))}"


def _lookup(entry: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = entry
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _check_references(plan: ConfigPlan, others: ConfigPlan, problems: list[ConfigProblem]) -> None:
    provider_names = {*plan.providers, *others.providers, *Provider.objects.values_list("name", flat=True)}
    model_names = {*plan.models, *others.models, *LanguageModel.objects.values_list("name", flat=True)}

    def refer(path: tuple[str, ...], name: str | None, known: set[str], what: str) -> None:
        if name is not None and name not in known:
            problems.append(ConfigProblem(path, f"names {what} {name!r}, which is neither in this file nor registered"))

    for name, attrs in plan.models.items():
        path = ("models", name)
        _check_deployment_shape(path, attrs, problems)
        refer((*path, "provider"), attrs.get("provider"), provider_names, "the provider")
        for deployment in attrs.get("deployments") or []:
            refer((*path, "deployments"), deployment["provider"], provider_names, "the provider")
        refer((*path, "content_policy_fallback"), attrs.get("content_policy_fallback"), model_names, "the model")
        for target in attrs.get("fallbacks") or []:
            refer((*path, "fallbacks"), target, model_names, "the fallback model")
        if name in (attrs.get("fallbacks") or []):
            problems.append(ConfigProblem((*path, "fallbacks"), "a model cannot fall back to itself"))
    for name, attrs in plan.prompts.items():
        refer(("prompts", name, "default_model"), attrs.get("default_model"), model_names, "the model")
    defaults = [name for name, attrs in plan.models.items() if attrs.get("chat_default")]
    for name in defaults[1:]:
        problems.append(
            ConfigProblem(
                ("models", name, "chat_default"), f"only one model can be the chat default ({defaults[0]!r} is)"
            )
        )


def _check_deployment_shape(path: tuple[str, ...], attrs: dict[str, Any], problems: list[ConfigProblem]) -> None:
    """A model names its provider and upstream, or lists deployments that each name theirs."""
    if attrs.get("deployments"):
        for key in ("provider", "upstream"):
            if attrs.get(key) is not None:
                problems.append(ConfigProblem((*path, key), "with deployments listed, give it in each deployment"))
        return
    for key in ("provider", "upstream"):
        if attrs.get(key) is None:
            problems.append(ConfigProblem((*path, key), "is required (or list the model's deployments)"))


# --- line numbers -----------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[(?!\[)\s*(?P<key>[^\]]*?)\s*\]\s*(#.*)?$")
_KEY_PART = re.compile(r"\s*(?:\"((?:[^\"\\]|\\.)*)\"|'([^']*)'|([A-Za-z0-9_-]+))\s*(?:\.|$)")


def _split_key(text: str) -> tuple[str, ...] | None:
    parts: list[str] = []
    position = 0
    while position < len(text):
        match = _KEY_PART.match(text, position)
        if match is None or match.end() == position:
            return None
        basic, literal, bare = match.groups()
        parts.append(json.loads(f'"{basic}"') if basic is not None else literal if literal is not None else bare)
        position = match.end()
    return tuple(parts)


def _line_of(text: str, path: tuple[str, ...]) -> int | None:
    """The line where ``path`` is written: its key inside the deepest table header that holds it."""
    table: tuple[str, ...] = ()
    best_depth, best_line = 0, None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group("key")) or ()
            depth = _match_depth(path, table)
        else:
            key = _assigned_key(line)
            if key is None or _match_depth(path, table) != len(table):
                continue
            depth = _match_depth(path, table + key)
        if depth > best_depth:
            best_depth, best_line = depth, number
    return best_line


def _match_depth(path: tuple[str, ...], key: tuple[str, ...]) -> int:
    """How many parts of ``path`` a key covers, or -1 when they part ways."""
    shared = min(len(path), len(key))
    return shared if path[:shared] == key[:shared] else -1


def _assigned_key(line: str) -> tuple[str, ...] | None:
    if "=" not in line or line.lstrip().startswith("#"):
        return None
    return _split_key(line.split("=", 1)[0].strip())


# --- applying ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    kind: str  # provider | model | prompt
    name: str
    status: str  # created | updated | unchanged
    details: tuple[str, ...] = ()

    def __str__(self) -> str:
        suffix = f" ({', '.join(self.details)})" if self.details else ""
        return f"{self.kind} {self.name}: {self.status}{suffix}"


@dataclass
class LoadReport:
    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(change.status != "unchanged" for change in self.changes)

    def count(self, status: str) -> int:
        return sum(change.status == status for change in self.changes)

    def summary(self) -> str:
        return ", ".join(f"{self.count(status)} {status}" for status in ("created", "updated", "unchanged"))


class _DryRun(Exception):
    def __init__(self, report: LoadReport) -> None:
        self.report = report


def config_load(path: str | Path, *, dry_run: bool = False) -> LoadReport:
    return config_documents_load([config_read(path)], dry_run=dry_run)


def config_documents_load(documents: list[ConfigDocument], *, dry_run: bool = False) -> LoadReport:
    """Validate every document, then apply them all in one transaction (rolled back for a dry run)."""
    names = ConfigPlan()
    for document in documents:
        for section in SECTIONS:
            entries = document.data.get(section)
            if isinstance(entries, dict):
                getattr(names, section).update({key: {} for key in entries})
    plans = [config_validate(document, also_known=names) for document in documents]
    try:
        with transaction.atomic():
            report = LoadReport([change for plan in plans for change in config_apply(plan).changes])
            if dry_run:
                raise _DryRun(report)
    except _DryRun as rolled_back:
        return rolled_back.report
    return report


@transaction.atomic
def config_apply(plan: ConfigPlan) -> LoadReport:
    report = LoadReport()
    for name, attrs in plan.providers.items():
        _, status, changed = _upsert(Provider, name, attrs, _provider_fields())
        report.changes.append(Change("provider", name, status, changed))
    model_rows = {name: _model_upsert(name, attrs) for name, attrs in plan.models.items()}
    for name, (row, model_status, own_changes) in model_rows.items():
        all_changes = own_changes + _model_links_apply(row, plan.models[name])
        if model_status == "created":
            all_changes = []
        elif all_changes:
            model_status = "updated"
        report.changes.append(Change("model", name, model_status, tuple(all_changes)))
    for name, attrs in plan.prompts.items():
        report.changes.append(_prompt_apply(name, attrs))
    transaction.on_commit(snapshot_invalidate)
    return report


def _upsert(
    model: type[models.Model], name: str, attrs: dict[str, Any], fields: tuple[Field, ...]
) -> tuple[Any, str, tuple[str, ...]]:
    row = model._default_manager.filter(name=name).first()
    if row is None:
        row = model._default_manager.create(name=name, **attrs)
        return row, "created", ()
    keys = {spec.attr: ".".join(spec.path) for spec in fields}
    changed = tuple(keys.get(attr, attr) for attr, value in attrs.items() if getattr(row, attr) != value)
    if changed:
        for attr, value in attrs.items():
            setattr(row, attr, value)
        row.save()
    return row, "updated" if changed else "unchanged", changed


_MODEL_LINKS = {"fallbacks", "content_policy_fallback", "deployments"}


def _model_upsert(name: str, attrs: dict[str, Any]) -> tuple[LanguageModel, str, list[str]]:
    own = {key: value for key, value in attrs.items() if key not in _MODEL_LINKS}
    first = (attrs.get("deployments") or [None])[0]
    if first is not None:
        # The model's own provider and upstream mirror its first deployment (docs/api.md, Deployments).
        own["provider"], own["upstream"] = first["provider"], first["upstream"]
    own["provider"] = Provider.objects.get(name=own["provider"])
    if own.get("chat_default"):  # the file names the one default: any other model stops being it
        LanguageModel.objects.exclude(name=name).filter(chat_default=True).update(chat_default=False)
    row, status, changed = _upsert(LanguageModel, name, own, _model_fields())
    return row, status, list(changed)


def _deployments_wanted(row: LanguageModel, attrs: dict[str, Any]) -> list[dict[str, Any]]:
    listed = attrs.get("deployments") or []
    if listed:
        return [dict(deployment) for deployment in listed]
    only = {attr: default for attr, _, default in _DEPLOYMENT_KEYS.values() if default is not _MISSING}
    only.update(name=row.provider.name, provider=row.provider.name, upstream=row.upstream, position=0)
    return [only]


def _deployment_state(deployment: Deployment) -> dict[str, Any]:
    state: dict[str, Any] = {attr: getattr(deployment, attr) for attr, _, _ in _DEPLOYMENT_KEYS.values()}
    state.update(provider=deployment.provider.name, position=deployment.position)
    return state


def _deployments_apply(row: LanguageModel, attrs: dict[str, Any]) -> list[str]:
    """Make the model's deployments exactly those of the file (one, its own, when none are listed)."""
    wanted = _deployments_wanted(row, attrs)
    current = [_deployment_state(d) for d in row.deployments.select_related("provider").order_by("position", "id")]
    if wanted == current or (not current and not attrs.get("deployments")):
        return []  # no rows at all is the same one deployment: the model's own provider (orchestration/registry.py)
    row.deployments.all().delete()
    providers = Provider.objects.in_bulk([d["provider"] for d in wanted], field_name="name")
    Deployment.objects.bulk_create(
        Deployment(model=row, **{**deployment, "provider": providers[deployment["provider"]]}) for deployment in wanted
    )
    return ["deployments"]


def _model_links_apply(row: LanguageModel, attrs: dict[str, Any]) -> list[str]:
    changed: list[str] = _deployments_apply(row, attrs)
    wanted_policy = attrs.get("content_policy_fallback")
    current_policy = row.content_policy_fallback.name if row.content_policy_fallback else None
    if wanted_policy != current_policy:
        row.content_policy_fallback = LanguageModel.objects.get(name=wanted_policy) if wanted_policy else None
        row.save(update_fields=["content_policy_fallback", "updated_at"])
        changed.append("content_policy_fallback")
    wanted = list(attrs.get("fallbacks") or [])
    current = list(row.fallbacks.order_by("position").values_list("target__name", flat=True))
    if wanted != current:
        row.fallbacks.all().delete()
        targets = LanguageModel.objects.in_bulk(wanted, field_name="name")
        Fallback.objects.bulk_create(
            Fallback(model=row, target=targets[target], position=position) for position, target in enumerate(wanted)
        )
        changed.append("fallbacks")
    return changed


def _prompt_apply(name: str, attrs: dict[str, Any]) -> Change:
    template, created = PromptTemplate.objects.get_or_create(name=name, defaults={"description": attrs["description"]})
    details: list[str] = []
    if not created and template.description != attrs["description"]:
        template.description = attrs["description"]
        template.save(update_fields=["description"])
        details.append("description")
    latest = template.versions.select_related("default_model").order_by("-version").first()
    if latest is None or _prompt_content(latest) != _prompt_wanted(attrs):
        version = PromptVersion.objects.create(
            template=template,
            version=(latest.version + 1) if latest else 1,
            system_prompt=attrs["system_prompt"],
            variables=attrs["variables"],
            parameters=attrs["parameters"],
            default_model=LanguageModel.objects.get(name=attrs["default_model"]) if attrs["default_model"] else None,
        )
        details.append(f"version {version.version}")
    status = "created" if created else "updated" if details else "unchanged"
    return Change("prompt", name, status, tuple(details))


def _prompt_content(version: PromptVersion) -> tuple[Any, ...]:
    model = version.default_model.name if version.default_model else None
    return (version.system_prompt, list(version.variables or []), model, dict(version.parameters or {}))


def _prompt_wanted(attrs: dict[str, Any]) -> tuple[Any, ...]:
    return (attrs["system_prompt"], list(attrs["variables"]), attrs["default_model"], dict(attrs["parameters"]))


# --- dumping ----------------------------------------------------------------------------------


def config_dump() -> str:
    """The registry as TOML that ``config_load`` accepts: every provider, model and prompt."""
    out = ["# Switchyard model registry, written by `manage.py llmconfig dump`.", ""]
    for provider in Provider.objects.order_by("name"):
        out += _dump_provider(provider)
    chains: dict[int, list[str]] = {}
    for link in Fallback.objects.select_related("target").order_by("model_id", "position"):
        chains.setdefault(link.model_id, []).append(link.target.name)
    listed: dict[int, list[Deployment]] = {}
    for deployment in Deployment.objects.select_related("provider").order_by("model_id", "position", "id"):
        listed.setdefault(deployment.model_id, []).append(deployment)
    for model in LanguageModel.objects.select_related("provider", "content_policy_fallback").order_by("name"):
        out += _dump_model(model, chains.get(model.pk, []), listed.get(model.pk, []))
    for template in PromptTemplate.objects.order_by("name"):
        latest = template.versions.select_related("default_model").order_by("-version").first()
        if latest is not None:
            out += _dump_prompt(template, latest)
    return "\n".join(out).rstrip() + "\n"


def _dump_provider(provider: Provider) -> list[str]:
    lines = [f"[providers.{_toml_key(provider.name)}]"]
    if provider.api_key_encrypted and not provider.api_key_env:
        lines.insert(0, "# Its secret is stored encrypted in the database (set in the admin); it is not written here.")
    lines += _dump_fields(provider, _provider_fields())
    return [*lines, ""]


def _dump_model(model: LanguageModel, fallbacks: list[str], deployments: list[Deployment]) -> list[str]:
    simple = not deployments or [_deployment_state(d) for d in deployments] == _deployments_wanted(model, {})
    lines = [f"[models.{json.dumps(model.name)}]"]
    if simple:
        lines.append(f"provider = {_toml_value(model.provider.name)}")
    lines += _dump_fields(model, _model_fields(), skip=set() if simple else {"upstream"})
    if fallbacks:
        lines.append(f"fallbacks = {_toml_value(fallbacks)}")
    if model.content_policy_fallback:
        lines.append(f"content_policy_fallback = {_toml_value(model.content_policy_fallback.name)}")
    if not simple:
        for deployment in deployments:
            lines += ["", f"[[models.{json.dumps(model.name)}.deployments]]", *_dump_deployment(deployment)]
    return [*lines, ""]


def _dump_deployment(deployment: Deployment) -> list[str]:
    state = _deployment_state(deployment)
    lines = []
    for key, (attr, _, default) in _DEPLOYMENT_KEYS.items():
        value = state[attr]
        if value is None or (value == default and key not in {"name", "provider", "upstream"}):
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    return lines


def _dump_prompt(template: PromptTemplate, version: PromptVersion) -> list[str]:
    lines = [f"[prompts.{_toml_key(template.name)}]", f"# version {version.version}"]
    if template.description:
        lines.append(f"description = {_toml_value(template.description)}")
    lines.append(f"system_prompt = {_toml_text(version.system_prompt)}")
    if version.variables:
        lines.append(f"variables = {_toml_value(list(version.variables))}")
    if version.default_model:
        lines.append(f"default_model = {_toml_value(version.default_model.name)}")
    if version.parameters:
        lines.append(f"parameters = {_toml_value(dict(version.parameters))}")
    return [*lines, ""]


def _dump_fields(row: models.Model, fields: tuple[Field, ...], *, skip: set[str] | None = None) -> list[str]:
    plain: list[str] = []
    groups: dict[str, dict[str, Any]] = {}
    for spec in fields:
        if spec.attr in {"provider", "fallbacks", "content_policy_fallback", "deployments"} | (skip or set()):
            continue
        value = getattr(row, spec.attr)
        if value is None or value == "":
            continue
        if len(spec.path) == 1:
            plain.append(f"{spec.path[0]} = {_toml_value(value)}")
        else:
            groups.setdefault(spec.path[0], {})[spec.path[1]] = value
    return plain + [f"{name} = {_toml_value(values)}" for name, values in groups.items()]


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        text = f"{value:.4f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value if item is not None) + "]"
    if isinstance(value, dict):
        items = [f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_text(text: str) -> str:
    """Multi-line prompts as literal blocks, so a dumped file stays readable."""
    printable = all(char in "\n\t" or char.isprintable() for char in text)
    if "\n" in text and printable and "'''" not in text and not text.endswith("'") and "\r" not in text:
        return "'''\n" + text + "'''"
    return _toml_value(text)

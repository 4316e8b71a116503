"""``manage.py createapikey --user U [--name N] [--rpm R] [--tpm T] [--models a,b] [--budget USD]``."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.access.keys import api_key_create
from orchestration.models import LanguageModel


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def budget_usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in USD") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be zero or more")
    return value


class Command(BaseCommand):
    help = "Create an API key for a user and print it. The key is shown this once and never again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="Username of the key's owner.")
        parser.add_argument("--name", default="", help="A name to recognise the key by.")
        parser.add_argument("--rpm", type=positive_int, help="Requests per minute (default: no limit).")
        parser.add_argument("--tpm", type=positive_int, help="Tokens per minute (default: no limit).")
        parser.add_argument("--models", default="", help="Comma-separated models the key may use (default: all).")
        parser.add_argument("--budget", type=budget_usd, help="Monthly budget in USD (default: none).")

    def handle(self, *args: Any, **options: Any) -> None:
        user = self._user(options["user"])
        models = [name.strip() for name in options["models"].split(",") if name.strip()]
        self._check_models(models)
        key, secret = api_key_create(
            user=user,
            name=options["name"],
            rpm=options["rpm"],
            tpm=options["tpm"],
            allowed_models=models,
            monthly_budget_usd=options["budget"],
        )
        self.stderr.write(f"Created API key {key.prefix}… for {user}. It is shown once; store it now:")
        self.stdout.write(secret)

    def _user(self, username: str) -> Any:
        try:
            return get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}. Create one first (manage.py createsuperuser).") from None

    def _check_models(self, models: list[str]) -> None:
        known = set(LanguageModel.objects.filter(name__in=models).values_list("name", flat=True))
        unknown = [name for name in models if name not in known]
        if unknown:
            raise CommandError(f"Unknown model(s): {', '.join(unknown)}. See the models in the admin or /v1/models.")

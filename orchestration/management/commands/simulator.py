"""``manage.py simulator``: the provider simulator alone, without touching the database."""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from orchestration.simulator.server import serve


class Command(BaseCommand):
    help = "Run the provider simulator (OpenAI, Anthropic and Gemini wire formats) until SIGTERM or Ctrl-C."
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9100)

    def handle(self, *args: Any, **options: Any) -> None:
        def announce(url: str) -> None:
            self.stdout.write(f"Simulator listening on {url}")
            self.stdout.flush()

        asyncio.run(serve(options["host"], options["port"], announce))

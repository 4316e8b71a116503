"""``manage.py llmconfig load FILE.toml | dump | demo``: the model registry as code."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.config.demo import demo_documents
from orchestration.llmconfig import ConfigError, LoadReport, config_documents_load, config_dump, config_read


class Command(BaseCommand):
    help = "Load the model registry from TOML (idempotent), dump it as TOML, or load the demo config."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, parser_class=CommandParser)
        load = actions.add_parser("load", help="Validate FILE, then apply it in one transaction.")
        load.add_argument("files", nargs="+", metavar="FILE.toml")
        load.add_argument("--dry-run", action="store_true", help="Report what would change; change nothing.")
        actions.add_parser("dump", help="Print the registry as TOML that `load` accepts.")
        demo = actions.add_parser(
            "demo",
            help="Load the simulator models, plus hosted providers whose API key variable is set and a local Ollama.",
        )
        demo.add_argument("--dry-run", action="store_true", help="Report what would change; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "dump":
            self.stdout.write(config_dump(), ending="")
            return
        try:
            documents = demo_documents() if action == "demo" else [config_read(path) for path in options["files"]]
            for document in documents:
                self.stdout.write(f"Loading {document.source}")
            report = config_documents_load(documents, dry_run=options["dry_run"])
        except ConfigError as error:
            raise CommandError(f"nothing was loaded:\n{error}") from None
        self._report(report, dry_run=options["dry_run"])

    def _report(self, report: LoadReport, *, dry_run: bool) -> None:
        for change in report.changes:
            line = f"  {change}"
            self.stdout.write(self.style.SUCCESS(line) if change.status != "unchanged" else line)
        prefix = "Dry run, nothing changed; would be: " if dry_run else ""
        self.stdout.write(prefix + report.summary())

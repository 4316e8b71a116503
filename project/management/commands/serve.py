"""``manage.py serve``: run the whole Switchyard stack under one supervisor (docs/operations.md, "manage.py serve")."""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from orchestration.llmconfig import ConfigError, config_load
from orchestration.metrics import metrics_dir_reset
from orchestration.redisclients import DEFAULT, redis_sync, redis_sync_forget
from project.stack import (
    StackOptions,
    admin_user_ensure,
    port_in_use,
    simulator_address,
    stack_specs,
    web_url,
)
from project.supervisor import Supervisor, SupervisorError
from project.valkey import ValkeySocketError


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class Command(BaseCommand):
    help = (
        "Run the whole stack: embedded Valkey (when REDIS_URL is unset), the provider simulator, "
        "RQ workers and the ASGI server. Ctrl-C or SIGTERM stops all of them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address the web server binds (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port of the web server (default 8000).")
        parser.add_argument("--workers", type=_positive, default=2, help="Number of RQ workers (default 2).")
        parser.add_argument(
            "--no-simulator",
            action="store_true",
            help="Do not start the provider simulator (SWITCHYARD_SIMULATOR_URL is passed on unchanged).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stack = StackOptions(options["host"], options["port"], options["workers"], not options["no_simulator"])
        self._check_database()
        self._check_ports(stack)
        self._check_redis()
        self._load_config_file()
        connections.close_all()
        # Samples of an earlier run's processes would otherwise be summed into /metrics forever.
        metrics_dir_reset()
        # The readiness probes would log every poll.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        try:
            supervisor = Supervisor(stack_specs(stack), output=self.stdout)
        except ValkeySocketError as error:
            raise CommandError(f"cannot start the embedded Valkey: {error}") from None
        self._run(supervisor, stack)

    def _run(self, supervisor: Supervisor, stack: StackOptions) -> None:
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, lambda *_: supervisor.request_stop())
        failure: SupervisorError | None = None
        try:
            supervisor.start()
            if not supervisor.stop_requested.is_set():
                self._banner(stack, admin_user_ensure())
                connections.close_all()
                supervisor.run()
        except SupervisorError as error:
            failure = error
        finally:
            supervisor.say("stopping every process")
            supervisor.stop()
            supervisor.say("stopped")
        if failure is not None:
            raise CommandError(str(failure))

    # --- checks before anything starts ---------------------------------------------------------

    def _check_database(self) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            executor = MigrationExecutor(connection)
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except Exception as error:
            raise CommandError(f"the database does not answer ({error}); check DATABASE_URL") from None
        if pending:
            raise CommandError(
                f"the database has {len(pending)} unapplied migrations: run `python manage.py migrate` first"
            )

    def _check_ports(self, stack: StackOptions) -> None:
        if port_in_use(stack.host, stack.port):
            raise CommandError(f"port {stack.port} on {stack.host} is in use: choose another with --port")
        if stack.simulator:
            host, port = simulator_address()
            if port_in_use(host, port):
                raise CommandError(
                    f"port {port} for the simulator is in use: set SWITCHYARD_SIMULATOR_URL to another "
                    "local port, or pass --no-simulator to use the simulator already running there"
                )

    def _check_redis(self) -> None:
        if settings.REDIS_EMBEDDED:
            return
        try:
            redis_sync(DEFAULT).ping()
        except redis.RedisError as error:
            raise CommandError(f"REDIS_URL={settings.REDIS_URL} does not answer: {error}") from None
        finally:
            redis_sync_forget()  # the stack's children must not inherit this process's sockets

    def _load_config_file(self) -> None:
        path = str(settings.SWITCHYARD["CONFIG_FILE"] or "")
        if not path:
            return
        try:
            report = config_load(path)
        except ConfigError as error:
            raise CommandError(f"SWITCHYARD_CONFIG: nothing was loaded:\n{error}") from None
        for change in report.changes:
            if change.status != "unchanged":
                self.stdout.write(f"config: {change}")
        self.stdout.write(f"config: loaded {path}: {report.summary()}")

    # --- output -------------------------------------------------------------------------------

    def _banner(self, stack: StackOptions, admin_password: str | None) -> None:
        base = web_url(stack)
        redis_line = f"embedded Valkey on {settings.REDIS_SOCKET}" if settings.REDIS_EMBEDDED else settings.REDIS_URL
        simulator = str(settings.SWITCHYARD["SIMULATOR_URL"]) + ("" if stack.simulator else " (not started here)")
        lines = [
            "",
            "Switchyard is running.",
            f"  App         {base}/",
            f"  Admin       {base}/admin/",
            f"  API docs    {base}/api/docs/",
            f"  OpenAI API  {base}/v1/",
            f"  Metrics     {base}/metrics",
            f"  Simulator   {simulator}",
            f"  Redis       {redis_line}",
            f"  Workers     {stack.workers} RQ workers on queues agents, default",
        ]
        if admin_password is not None:
            lines += [
                "",
                "  First run: an admin user was created. Its password is shown this once; note it now.",
                f"  Username    admin\n  Password    {admin_password}",
            ]
        lines += ["", "Press Ctrl-C to stop.", ""]
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))

"""What ``GET /metrics`` serves: the samples every process wrote, plus what is read live.

- The counters and histograms of ``orchestration.metrics`` and django-prometheus, summed over
  every process of the stack (prometheus_client's multiprocess files).
- Zeros for the label sets a dashboard divides by or alerts on, as Prometheus' convention asks
  for labels known in advance: each refusal reason, and each chat model's cache outcomes. A ratio
  then reads 0 before the first event rather than "no data".
- States read from Redis at each scrape, so every web process answers the same and a restarted
  one knows at once: each breaker of the registry (``llm_circuit_breaker_state``: 0 closed,
  1 half-open, 2 open; an open breaker whose period is over counts as half-open, as the next call
  will probe), and the task queues (jobs waiting, running and failed, the age of the oldest
  waiting job, the live workers).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from orchestration.breaker import BreakerView, breaker_key, breakers_read
from orchestration.metrics import BREAKER_VALUES, CACHE, REFUSAL_REASONS, REFUSALS, metrics_flush
from orchestration.registry import snapshot
from orchestration.types import CacheStatus

logger = logging.getLogger(__name__)

CACHE_STATUSES: tuple[CacheStatus, ...] = ("HIT", "SEMANTIC-HIT", "STALE", "MISS", "BYPASS")
# A worker that has not sent a heartbeat for this long is not counted as live. RQ's workers beat
# at least every dequeue timeout (15 s here) and every 30 s while a job runs.
WORKER_SILENCE_S = 90.0


def metrics_exposition() -> bytes:
    """The text of ``/metrics``."""
    metrics_flush()  # what this process holds (``orchestration.metrics``, "samples held")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ZeroFilled(MultiProcessCollector(None)))
    registry.register(LiveState())
    return generate_latest(registry)


def zero_label_sets() -> dict[Counter, list[dict[str, str]]]:
    """Per counter, the label sets that exist from the start, at 0."""
    chat_models = [route.name for route in snapshot().models.values() if "chat" in route.capabilities]
    return {
        REFUSALS: [{"reason": reason} for reason in REFUSAL_REASONS],
        CACHE: [{"model": model, "status": status} for model in chat_models for status in CACHE_STATUSES],
    }


class ZeroFilled(Collector):
    """The samples of ``source``, with the zero label sets added where no process wrote them yet."""

    def __init__(self, source: Collector) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        zeros = {_described(counter): label_sets for counter, label_sets in zero_label_sets().items() if label_sets}
        for family in self.source.collect():
            for key in [key for key in zeros if key[0] == family.name]:
                _fill(family, zeros.pop(key))
            yield family
        for (name, documentation), label_sets in zeros.items():  # no process counted any yet
            family = CounterMetricFamily(name, documentation, labels=sorted(label_sets[0]))
            _fill(family, label_sets)
            yield family


def _described(counter: Counter) -> tuple[str, str]:
    family = next(iter(counter.describe()))
    return family.name, family.documentation


def _fill(family: Metric, label_sets: list[dict[str, str]]) -> None:
    name = f"{family.name}_total"
    present = {tuple(sorted(sample.labels.items())) for sample in family.samples if sample.name == name}
    for labels in label_sets:
        if tuple(sorted(labels.items())) not in present:
            family.add_sample(name, labels, 0.0)


class LiveState(Collector):
    """Breaker states and task queues, read from Redis when ``/metrics`` is asked."""

    def collect(self) -> Iterator[Metric]:
        breakers = GaugeMetricFamily("llm_circuit_breaker_state", "0 closed, 1 half-open, 2 open.", labels=["breaker"])
        for key, view in (breakers_now() or {}).items():
            breakers.add_metric([key], breaker_value(view, time.time()))
        yield breakers
        try:
            yield from queue_families()
        except Exception:
            logger.warning("could not read the task queues for /metrics", exc_info=True)


def breakers_now() -> dict[str, BreakerView] | None:
    registry = snapshot()
    open_s: dict[str, float] = {}
    for model in registry.models.values():
        # Each deployment's own route: a model with several deployments has a breaker per deployment.
        for route in [deployment.route for deployment in model.deployments] or [model]:
            provider = registry.providers.get(route.provider)
            if provider is not None:
                open_s[breaker_key(route, provider)] = provider.breaker_open_s
    return breakers_read(open_s)


def breaker_value(view: BreakerView, now: float) -> float:
    if view.state == "open" and view.next_probe_at is not None and now >= view.next_probe_at:
        return BREAKER_VALUES["half_open"]
    return BREAKER_VALUES.get(view.state, 0)


@functools.cache
def _queue(name: str) -> Any:
    """The RQ queue ``name``, made once: ``django_rq.get_queue`` builds a new Redis client (and a
    new connection) each time it is called, so every scrape connected afresh."""
    import django_rq

    return django_rq.get_queue(name)


def queue_families() -> Iterator[Metric]:
    from rq import Worker

    jobs = GaugeMetricFamily("switchyard_queue_jobs", "Jobs in an RQ queue, by state.", labels=["queue", "state"])
    age = GaugeMetricFamily(
        "switchyard_queue_oldest_job_age_seconds", "How long the oldest waiting job has waited.", labels=["queue"]
    )
    workers = GaugeMetricFamily("switchyard_workers", "Live RQ workers listening on a queue.", labels=["queue"])
    now = datetime.now(UTC)
    for name in settings.RQ_QUEUES:
        queue = _queue(name)
        jobs.add_metric([name, "queued"], queue.count)
        jobs.add_metric([name, "started"], queue.started_job_registry.count)
        jobs.add_metric([name, "failed"], queue.failed_job_registry.count)
        age.add_metric([name], _oldest_wait_s(queue, now))
        live = [worker for worker in Worker.all(queue=queue) if _alive(worker.last_heartbeat, now)]
        workers.add_metric([name], len(live))
    yield from (jobs, age, workers)


def _oldest_wait_s(queue: object, now: datetime) -> float:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    for job_id in queue.get_job_ids(0, 1):  # type: ignore[attr-defined]
        try:
            enqueued_at = Job.fetch(job_id, connection=queue.connection).enqueued_at  # type: ignore[attr-defined]
        except NoSuchJobError:
            return 0.0
        if enqueued_at is not None:
            return max(0.0, (now - enqueued_at.replace(tzinfo=enqueued_at.tzinfo or UTC)).total_seconds())
    return 0.0


def _alive(last_heartbeat: datetime | None, now: datetime) -> bool:
    if last_heartbeat is None:
        return False
    beat = last_heartbeat.replace(tzinfo=last_heartbeat.tzinfo or UTC)
    return (now - beat).total_seconds() <= WORKER_SILENCE_S

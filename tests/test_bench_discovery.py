"""``make bench`` (``python -m tests.bench``) runs every module it finds as a benchmark: each must
have a ``run()``, and the tools beside them must be kept out."""

from __future__ import annotations

import importlib

from tests.bench.__main__ import benchmark_names


def test_every_benchmark_make_bench_finds_can_be_run() -> None:
    names = benchmark_names([])
    assert "streaming" in names and "gateway_throughput" in names
    for name in names:
        assert callable(getattr(importlib.import_module(f"tests.bench.{name}"), "run", None)), name

"""Benchmarks, run by ``make bench`` (``python -m tests.bench``).

Each module in this folder (other than ``__main__``) is one benchmark: it defines
``run() -> dict[str, object]`` returning its figures by name, already in the units named
(``median_overhead_ms``...). ``__main__`` prepares one environment for all of them (a scratch
SQLite database, Redis, the simulator: see ``bench_environment``) and prints every figure.
"""

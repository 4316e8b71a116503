"""Run every benchmark in this folder (or those named) and print their figures."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

from tests.bench.environment import bench_environment

# Tools run by hand, not benchmarks: semantic_cross_encoder trains a model in a venv with PyTorch,
# semantic_verifier fits an experiment's model, wordnet_synonyms writes the synonym table.
_NOT_BENCHMARKS = {
    "__main__",
    "environment",
    "streamkit",
    "semantic_cross_encoder",
    "semantic_verifier",
    "wordnet_synonyms",
}


def benchmark_names(selected: list[str]) -> list[str]:
    found = sorted(
        info.name for info in pkgutil.iter_modules([str(Path(__file__).parent)]) if info.name not in _NOT_BENCHMARKS
    )
    unknown = sorted(set(selected) - set(found))
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; there are: {', '.join(found)}")
    return [name for name in found if not selected or name in selected]


def main(selected: list[str]) -> int:
    names = benchmark_names(selected)
    bench_environment()
    failed = 0
    for name in names:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            figures = importlib.import_module(f"tests.bench.{name}").run()
        except Exception as error:  # one broken benchmark must not hide the others' figures
            failed += 1
            print(f"   FAILED: {type(error).__name__}: {error}", flush=True)
            continue
        for figure, value in figures.items():
            print(f"   {figure}: {value}", flush=True)
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``python -m orchestration.simulator``: the simulator without loading Django at all."""

from __future__ import annotations

import argparse
import asyncio

from orchestration.simulator.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestration.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    options = parser.parse_args()
    asyncio.run(serve(options.host, options.port, lambda url: print(f"Simulator listening on {url}", flush=True)))


if __name__ == "__main__":
    main()

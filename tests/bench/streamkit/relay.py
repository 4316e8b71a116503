"""The floor: a bare aiohttp server that relays the upstream's bytes as they come, nothing else.

No authentication, no parsing, no accounting: what any Python relay of this stream must pay at
least. ``--uvloop`` runs it on uvloop (as Switchyard runs, when it does), so the floor is fair.
Its requests leave as they are made, as Switchyard's do (``orchestration/providers/eager.py``:
aiohttp does so itself on Python 3.12+; on 3.11 a burst's requests would leave in one clump, and
its tokens come back in clumps that cost less per token than the same tokens spread out,
docs/benchmarks.md, "A request leaves in the step that makes it").

    python -m tests.bench.streamkit.relay --port 9200 --upstream http://127.0.0.1:9100
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import ClientSession, TCPConnector, web

from orchestration.providers.eager import start_request_writes_eagerly


def application(upstream: str) -> web.Application:
    app = web.Application()

    async def start(app: web.Application) -> None:
        start_request_writes_eagerly(asyncio.get_running_loop())
        app["session"] = ClientSession(connector=TCPConnector(limit=0))

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": "application/json"}
        async with request.app["session"].post(upstream + request.path, data=body, headers=headers) as answer:
            response = web.StreamResponse(status=answer.status, headers={"Content-Type": answer.content_type})
            await response.prepare(request)
            async for data in answer.content.iter_any():
                await response.write(data)
            await response.write_eof()
            return response

    app.router.add_post("/v1/chat/completions", relay)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--uvloop", action="store_true")
    options = parser.parse_args()
    loop_factory = None
    if options.uvloop:
        import uvloop

        loop_factory = uvloop.new_event_loop
    web.run_app(
        application(options.upstream),
        host="127.0.0.1",
        port=options.port,
        backlog=4096,
        access_log=None,
        print=None,
        loop=loop_factory() if loop_factory else asyncio.new_event_loop(),
    )


if __name__ == "__main__":
    main()

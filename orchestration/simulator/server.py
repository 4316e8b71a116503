"""The simulator's HTTP server: wire-format routes, the control endpoint, and the answer engine.

Every chat call, whatever its wire format, goes through ``answer``: count it, wait the
configured latency, fail or hang if told to, then send the deterministic reply whole or as a
paced stream, with a drop or a broken chunk where configured. The server runs with handler
cancellation on, so a client that goes away mid-wait cancels the handler: that is how
disconnects are seen before any byte is written.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from orchestration.simulator import wire_anthropic, wire_gemini, wire_openai
from orchestration.simulator.behaviour import Behaviour, BehaviourBook, BehaviourInvalid, StatsBook
from orchestration.simulator.frames import StreamPlan, dumps, sse_data
from orchestration.simulator.reply import Prompt, Reply, WireInvalid, reply_for

ErrorShaper = Callable[[int, "str | None", "Prompt | None", "Behaviour | None"], "tuple[int, dict[str, Any]]"]


@dataclass(frozen=True)
class Wire:
    """What the engine needs from one wire format."""

    body: Callable[[Prompt, Reply], dict[str, Any]]
    stream: Callable[[Prompt, Reply], StreamPlan]
    error: ErrorShaper
    invalid: Callable[[WireInvalid], dict[str, Any]]
    malformed_frame: bytes
    error_headers: Callable[[dict[str, Any]], dict[str, str]] = lambda body: {}
    stream_content_type: str = "text/event-stream"
    single_chunk: Callable[[dict[str, Any]], bytes] = sse_data


OPENAI = Wire(
    body=wire_openai.chat_body,
    stream=wire_openai.chat_stream,
    error=wire_openai.error_body,
    invalid=wire_openai.invalid_body,
    malformed_frame=wire_openai.MALFORMED_FRAME,
)
ANTHROPIC = Wire(
    body=wire_anthropic.messages_body,
    stream=wire_anthropic.messages_stream,
    error=wire_anthropic.error_body,
    invalid=wire_anthropic.invalid_body,
    malformed_frame=wire_anthropic.MALFORMED_FRAME,
    error_headers=wire_anthropic.error_headers,
)
GEMINI_SSE = Wire(
    body=wire_gemini.content_body,
    stream=wire_gemini.sse_stream,
    error=wire_gemini.error_body,
    invalid=wire_gemini.invalid_body,
    malformed_frame=wire_gemini.MALFORMED_SSE_FRAME,
    single_chunk=wire_gemini.sse_single,
)
GEMINI_ARRAY = Wire(
    body=wire_gemini.content_body,
    stream=wire_gemini.array_stream,
    error=wire_gemini.error_body,
    invalid=wire_gemini.invalid_body,
    malformed_frame=wire_gemini.MALFORMED_ARRAY_FRAME,
    stream_content_type="application/json",
    single_chunk=wire_gemini.array_single,
)


@dataclass
class SimulatorState:
    behaviours: BehaviourBook = field(default_factory=BehaviourBook)
    stats: StatsBook = field(default_factory=StatsBook)


STATE = web.AppKey("simulator_state", SimulatorState)


@dataclass
class Exchange:
    """One call in progress; ``dropped`` marks a connection the simulator closed on purpose."""

    request: web.Request
    dropped: bool = False

    def drop(self) -> None:
        self.dropped = True
        if self.request.transport is not None:
            self.request.transport.close()


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(payload), status=status, headers=headers, content_type="application/json")


async def read_json(request: web.Request) -> Any:
    """The JSON body, or ``WireInvalid`` (a client error, never a 500)."""
    try:
        return json.loads(await request.read() or b"null")
    except (ValueError, UnicodeDecodeError) as error:
        raise WireInvalid(f"We could not parse the JSON body of your request: {error}") from error


async def _sleep_ms(milliseconds: float) -> None:
    if milliseconds > 0:
        await asyncio.sleep(milliseconds / 1000)


def _seconds_header(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _retry_headers(behaviour: Behaviour) -> dict[str, str]:
    headers = {}
    if behaviour.retry_after is not None:
        headers["Retry-After"] = _seconds_header(behaviour.retry_after)
    if behaviour.retry_after_ms is not None:
        headers["retry-after-ms"] = _seconds_header(behaviour.retry_after_ms)
    return headers


@contextmanager
def _counted(state: SimulatorState, model: str, exchange: Exchange) -> Iterator[None]:
    """Keep ``model``'s stats around one call: a cancelled or reset call is a disconnect."""
    stats = state.stats.of(model)
    stats.requests += 1
    stats.in_flight += 1
    stats.last_traceparent = exchange.request.headers.get("traceparent", "")
    try:
        yield
    except (asyncio.CancelledError, ConnectionResetError):
        if not exchange.dropped:
            state.stats.of(model).disconnects += 1
        raise
    finally:
        state.stats.of(model).in_flight -= 1
    state.stats.of(model).completed += 1


async def answer(request: web.Request, wire: Wire, prompt: Prompt) -> web.StreamResponse:
    """Serve one chat call with the behaviour configured for ``prompt.model``, keeping the stats."""
    exchange = Exchange(request)
    with _counted(request.app[STATE], prompt.model, exchange):
        behaviour, failure = await _prelude(request.app[STATE].behaviours, wire, prompt, _presented_key(request))
        if failure is not None:
            return failure
        reply = reply_for(prompt, behaviour)
        if prompt.stream:
            if behaviour.stream_omits_usage:
                prompt = replace(prompt, include_usage=False)
            return await _stream(exchange, wire, prompt, reply, behaviour)
        return await _whole(exchange, wire, prompt, reply, behaviour)


def _presented_key(request: web.Request) -> str:
    authorization = request.headers.get("Authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return request.headers.get("x-api-key") or request.headers.get("x-goog-api-key") or request.query.get("key", "")


def _masked(key: str) -> str:
    """A key as OpenAI quotes it in a 401: its head, stars, its last four characters."""
    return f"{key[:8]}{'*' * 8}{key[-4:]}" if len(key) > 12 else "****"


async def _prelude(
    book: BehaviourBook, wire: Wire, prompt: Prompt, presented_key: str = ""
) -> tuple[Behaviour, web.Response | None]:
    """What every call goes through first: the latency, a hang, and the configured failure."""
    behaviour = book.get(prompt.model)
    number = book.next_request_number(prompt.model)
    await _sleep_ms(behaviour.latency_ms)
    if behaviour.hang:
        await asyncio.Future()  # never resolves: only the client going away ends this call
    return behaviour, _failure(wire, prompt, behaviour, presented_key) if behaviour.fails(number) else None


def _failure(wire: Wire, prompt: Prompt, behaviour: Behaviour, presented_key: str = "") -> web.Response:
    status, body = wire.error(behaviour.failure_status(), behaviour.error_kind, prompt, behaviour)
    if behaviour.error_echoes_key and isinstance(body.get("error"), dict):
        body["error"]["message"] = f"Incorrect API key provided: {_masked(presented_key)}. {body['error']['message']}"
    if status < 400 and prompt.stream:
        # A provider that reports a refusal inside a normal reply (Gemini) streams it as its only chunk.
        return web.Response(body=wire.single_chunk(body), content_type=wire.stream_content_type)
    headers = wire.error_headers(body)
    if status in (429, 503):
        headers.update(_retry_headers(behaviour))
    return json_response(body, status, headers)


async def _whole(
    exchange: Exchange, wire: Wire, prompt: Prompt, reply: Reply, behaviour: Behaviour
) -> web.StreamResponse:
    generation_ms = 1000 * reply.completion_tokens / behaviour.tokens_per_s if behaviour.tokens_per_s else 0.0
    await _sleep_ms(behaviour.ttft_ms + generation_ms)
    if behaviour.drop_after_tokens is not None:
        exchange.drop()
        await asyncio.Future()  # the closed transport cancels this handler
    body = dumps(wire.body(prompt, reply))
    if behaviour.malformed_after_tokens is not None:
        body = body[: len(body) // 2]
    return web.Response(body=body, content_type="application/json")


def _fault(behaviour: Behaviour) -> tuple[str, int] | None:
    faults = [
        (after, name)
        for name, after in (("drop", behaviour.drop_after_tokens), ("malformed", behaviour.malformed_after_tokens))
        if after is not None
    ]
    if not faults:
        return None
    after, name = min(faults)
    return name, after


async def _stream(
    exchange: Exchange, wire: Wire, prompt: Prompt, reply: Reply, behaviour: Behaviour
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": wire.stream_content_type, "Cache-Control": "no-cache"})
    await response.prepare(exchange.request)
    plan = wire.stream(prompt, reply)
    fault = _fault(behaviour)
    await _sleep_ms(behaviour.ttft_ms)
    await _send_frames(response, plan, behaviour.tokens_per_s, fault[1] if fault else None)
    if fault is None:
        await response.write_eof()
        return response
    if fault[0] == "drop":
        exchange.drop()
        await asyncio.Future()  # the closed transport cancels this handler
    await response.write(wire.malformed_frame)
    await response.write_eof()
    return response


async def _send_frames(
    response: web.StreamResponse, plan: StreamPlan, tokens_per_s: float, stop_at: int | None
) -> None:
    """Write the frames, a token every ``1/tokens_per_s`` s, stopping before token ``stop_at + 1``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    pending: list[bytes] = []
    sent = 0
    for frame, tokens in plan.frames:
        if tokens and stop_at is not None and sent + tokens > stop_at:
            break
        if tokens and tokens_per_s and sent:
            if pending:
                await response.write(b"".join(pending))
                pending = []
            delay = start + sent / tokens_per_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        pending.append(frame)
        sent += tokens
    if stop_at is None:
        pending.append(plan.tail)
    if pending:
        await response.write(b"".join(pending))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def wire_door(wire: Wire, parse: Callable[[web.Request, Any], Prompt]) -> Handler:
    """A route handler: read the body, parse it for ``wire``, answer; bad input gets a wire-shaped 400."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            prompt = parse(request, await read_json(request))
        except WireInvalid as error:
            body = wire.invalid(error)
            return json_response(body, 400, wire.error_headers(body))
        return await answer(request, wire, prompt)

    return handle


async def openai_embeddings(request: web.Request) -> web.StreamResponse:
    try:
        model, texts, dimensions, encoding = wire_openai.embedding_request(await read_json(request))
    except WireInvalid as error:
        return json_response(wire_openai.invalid_body(error), 400)
    return await answer_embedding(
        request, OPENAI, model, wire_openai.embedding_body(model, texts, dimensions, encoding)
    )


async def answer_embedding(request: web.Request, wire: Wire, model: str, payload: dict[str, Any]) -> web.StreamResponse:
    """Embeddings honour latency, hangs and errors; the streaming knobs do not apply to them."""
    with _counted(request.app[STATE], model, Exchange(request)):
        prompt = Prompt(model=model, texts=[], assistant_turns=0)
        _, failure = await _prelude(request.app[STATE].behaviours, wire, prompt, _presented_key(request))
        return failure or json_response(payload)


def _known_models(state: SimulatorState) -> list[str]:
    names = set(state.behaviours.models) | set(state.stats.models)
    names.discard("*")
    return sorted(names) or ["simulator"]


async def openai_models(request: web.Request) -> web.StreamResponse:
    return json_response(wire_openai.models_body(_known_models(request.app[STATE])))


async def openai_model(request: web.Request) -> web.StreamResponse:
    return json_response(wire_openai.model_object(request.match_info["model"]))


# The control endpoint ------------------------------------------------------------------------


async def control_health(request: web.Request) -> web.StreamResponse:
    return json_response({"status": "ok"})


async def control_models(request: web.Request) -> web.StreamResponse:
    books = request.app[STATE].behaviours
    return json_response({"models": {name: behaviour.as_json() for name, behaviour in books.models.items()}})


async def control_model_get(request: web.Request) -> web.StreamResponse:
    upstream = request.match_info["upstream"]
    return json_response({"model": upstream, "behaviour": request.app[STATE].behaviours.get(upstream).as_json()})


async def control_model_put(request: web.Request) -> web.StreamResponse:
    upstream = request.match_info["upstream"]
    try:
        behaviour = request.app[STATE].behaviours.update(upstream, await read_json(request))
    except (BehaviourInvalid, WireInvalid) as error:
        return json_response({"error": {"message": str(error)}}, 400)
    return json_response({"model": upstream, "behaviour": behaviour.as_json()})


async def control_model_delete(request: web.Request) -> web.StreamResponse:
    request.app[STATE].behaviours.remove(request.match_info["upstream"])
    return json_response({"status": "ok"})


async def control_models_delete(request: web.Request) -> web.StreamResponse:
    request.app[STATE].behaviours.clear()
    return json_response({"status": "ok"})


async def control_stats(request: web.Request) -> web.StreamResponse:
    return json_response(request.app[STATE].stats.as_json())


async def control_stats_reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE].stats.reset()
    return json_response({"status": "ok"})


def _openai_prompt(request: web.Request, body: Any) -> Prompt:
    return wire_openai.chat_prompt(body)


def _anthropic_prompt(request: web.Request, body: Any) -> Prompt:
    return wire_anthropic.messages_prompt(body)


async def anthropic_count_tokens(request: web.Request) -> web.StreamResponse:
    try:
        prompt = wire_anthropic.messages_prompt(await read_json(request), counting=True)
    except WireInvalid as error:
        body = wire_anthropic.invalid_body(error)
        return json_response(body, 400, wire_anthropic.error_headers(body))
    return json_response({"input_tokens": prompt.prompt_tokens})


async def gemini_model_call(request: web.Request) -> web.StreamResponse:
    """``/v1beta/models/{model}:{method}``: the method decides what the body is."""
    model, _, method = request.match_info["target"].rpartition(":")
    stream = method == "streamGenerateContent"
    wire = GEMINI_ARRAY if stream and request.query.get("alt") != "sse" else GEMINI_SSE
    try:
        body = await read_json(request)
        if method in ("generateContent", "streamGenerateContent"):
            return await answer(request, wire, wire_gemini.content_prompt(model, body, stream=stream))
        if method == "countTokens":
            return json_response(wire_gemini.count_tokens_body(wire_gemini.content_prompt(model, body, stream=False)))
        if method == "embedContent":
            return await answer_embedding(request, wire, model, wire_gemini.embed_body(body))
        if method == "batchEmbedContents":
            return await answer_embedding(request, wire, model, wire_gemini.batch_embed_body(body))
    except WireInvalid as error:
        return json_response(wire_gemini.invalid_body(error), 400)
    body = wire_gemini.error_body(404, None, None)[1]
    body["error"]["message"] = f"Method {method!r} is not found for models/{model}."
    return json_response(body, 404)


async def gemini_models(request: web.Request) -> web.StreamResponse:
    methods = ["generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"]
    models = [
        {"name": f"models/{name}", "displayName": f"{name} (simulated)", "supportedGenerationMethods": methods}
        for name in _known_models(request.app[STATE])
    ]
    return json_response({"models": models})


async def unknown_route(request: web.Request) -> web.StreamResponse:
    """Unknown URLs get the error shape of the API they look like, as the real services answer."""
    message = f"Invalid URL ({request.method} {request.path})"
    if request.path.startswith("/v1beta/"):
        return json_response({"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}, 404)
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return json_response({"error": error}, 404)


def build_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = SimulatorState()
    app.router.add_get("/_sim/health", control_health)
    app.router.add_get("/_sim/models", control_models)
    app.router.add_delete("/_sim/models", control_models_delete)
    app.router.add_get("/_sim/models/{upstream}", control_model_get)
    app.router.add_put("/_sim/models/{upstream}", control_model_put)
    app.router.add_delete("/_sim/models/{upstream}", control_model_delete)
    app.router.add_get("/_sim/stats", control_stats)
    app.router.add_post("/_sim/stats/reset", control_stats_reset)
    app.router.add_post("/v1/chat/completions", wire_door(OPENAI, _openai_prompt))
    app.router.add_post("/v1/embeddings", openai_embeddings)
    app.router.add_get("/v1/models", openai_models)
    app.router.add_get("/v1/models/{model}", openai_model)
    app.router.add_post("/v1/messages", wire_door(ANTHROPIC, _anthropic_prompt))
    app.router.add_post("/v1/messages/count_tokens", anthropic_count_tokens)
    for version in ("v1beta", "v1"):
        app.router.add_post(f"/{version}/models/{{target}}", gemini_model_call)
    app.router.add_get("/v1beta/models", gemini_models)
    app.router.add_route("*", "/{path:.*}", unknown_route)
    return app


async def serve(host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve until SIGTERM or SIGINT, then close every connection within half a second."""
    runner = web.AppRunner(build_app(), handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bound_port = runner.addresses[0][1] if runner.addresses else port
    on_ready(f"http://{host}:{bound_port}")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()

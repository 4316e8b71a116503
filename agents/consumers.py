"""Channels consumers: the interactive agent WebSocket (docs/api.md, "Interactive
sessions") and a task's log as SSE ("The Task API, in short")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.datastructures import CaseInsensitiveMapping
from redis.exceptions import RedisError

from agents import selectors, services
from agents.apis import event_body
from agents.models import Task, TaskEvent
from agents.registry import Agent, agent_get
from agents.runtime import AgentFailed, AgentRuntime, RunSpec
from agents.sessions import InputMismatch, SessionRecorder
from orchestration.access.admission import Caller, caller_for_scope
from orchestration.access.keys import REFUSALS
from orchestration.access.revocation import AccessWatch, access_watch
from orchestration.errors import InvalidRequest, MethodNotAllowed, ServiceError, Unauthenticated, error_body_of
from orchestration.requestids import request_id_from
from orchestration.sse import PING, STREAM_HEADERS, event_id_from, sse_event, sse_retry
from orchestration.types import OrchestrationError
from orchestration.validation import json_document

logger = logging.getLogger(__name__)

MAX_FRAME_CHARS = 64 * 1024
CLOSE_UNAUTHENTICATED = 4401


def _not_signed_in() -> Unauthenticated:
    return Unauthenticated("not_authenticated", "Sign in, or send an API key in the Authorization header.")


class AgentSessionConsumer(AsyncJsonWebsocketConsumer):
    """One agent session per connection; at most one task at a time, run in this process."""

    async def connect(self) -> None:
        self.session_id = f"sess_{uuid.uuid4().hex}"
        self.run: asyncio.Task[None] | None = None
        self.task: Task | None = None
        self.recorder: SessionRecorder | None = None
        self.watch: AccessWatch | None = None
        await self.accept()
        caller = self.scope.get("caller")
        if caller is None:
            refusal = self.scope.get("access_refusal") or _not_signed_in()
            await self.send_refusal(refusal)
            await self.close(code=CLOSE_UNAUTHENTICATED, reason="authentication required")
            return
        self.caller: Caller = caller
        self.watch = access_watch(user_id=caller.user_id, api_key_id=caller.api_key_id, on_lost=self.access_lost)
        await self.send_json({"type": "session", "session_id": self.session_id})

    async def disconnect(self, code: int) -> None:
        if self.watch is not None:
            self.watch.close()
        task = self.task if self.running else None
        if task is not None:
            await self.stop_run()
            await database_sync_to_async(services.task_cancel)(
                task_id=task.pk, code="client_disconnected", message="The WebSocket connection closed."
            )
        await self.leave_task_group()

    def access_lost(self, code: str) -> None:
        """The session's key or account was stopped elsewhere: tell the client why, then close."""
        self.closing = asyncio.get_running_loop().create_task(self.close_for(code))

    async def close_for(self, code: str) -> None:
        task = self.task if self.running else None
        if task is not None:
            await self.stop_run()
            await database_sync_to_async(services.task_cancel)(task_id=task.pk, code=code, message=REFUSALS[code])
        await self.send_refusal(Unauthenticated(code, REFUSALS[code]))
        await self.close(code=CLOSE_UNAUTHENTICATED, reason=code)

    # --- frames from the client -----------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if text_data is None:
            await self.send_error("invalid_frame", "Send JSON text frames.")
            return
        if len(text_data) > MAX_FRAME_CHARS:
            await self.send_error("frame_too_large", f"Frames are limited to {MAX_FRAME_CHARS} characters.")
            return
        try:
            # As the HTTP doors read bodies: no NaN, no lone surrogates (the database cannot store
            # them), and a bounded depth (the parser's recursion would otherwise end the session).
            content = json_document(text_data, subject="The frame")
        except InvalidRequest as error:
            await self.send_error(error.code, error.message)
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error("invalid_message", "A frame is a JSON object with a string `type`.")
            return
        if self.watch is not None and self.watch.lost is not None:
            return  # the session is closing: its key or account was stopped (``access_lost``)
        await self.receive_json(content)

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        handlers = {
            "start_task": self.start_task,
            "provide_input": self.provide_input,
            "cancel": self.cancel,
            "ping": self.ping,
        }
        handler = handlers.get(content["type"])
        if handler is None:
            await self.send_error("unknown_type", f"Unknown message type {content['type']!r}.")
            return
        await handler(content)

    async def ping(self, content: dict[str, Any]) -> None:
        await self.send_json({"type": "pong"})

    async def start_task(self, content: dict[str, Any]) -> None:
        if self.running:
            await self.send_error("busy", "A task is already running on this connection.")
            return
        fields = _string_fields(content, required=("agent", "input"), optional=("model",))
        if isinstance(fields, str):
            await self.send_error("invalid_message", fields)
            return
        try:
            self.caller = await self.current_caller()
        except Unauthenticated as refusal:
            # Expired since the handshake (nothing announces the passing of time): as a revoked key.
            await self.send_refusal(refusal)
            await self.close(code=CLOSE_UNAUTHENTICATED, reason=refusal.code)
            return
        try:
            task = await database_sync_to_async(services.task_create_interactive)(
                caller=self.caller,
                agent=fields["agent"],
                task_input=fields["input"],
                model=fields.get("model") or None,
                session_id=self.session_id,
            )
        except ServiceError as error:
            await self.send_refusal(error)
            return
        await self.leave_task_group()
        self.task = task
        await self.channel_layer.group_add(services.task_control_group(task.pk), self.channel_name)
        agent = agent_get(task.agent)
        assert agent is not None  # task_create_interactive refused unknown agents
        self.recorder = SessionRecorder(task, self.send_json)
        self.run = asyncio.create_task(self.drive(task, agent, self.recorder))

    async def current_caller(self) -> Caller:
        """The connection's caller as it is now, for the admission of a ``start_task``: the key's
        limits, models, budget and expiry (or the person's policy) may have changed since the
        handshake. Cheap: the key cache and the policy cache hear of every change."""
        caller = await caller_for_scope(self.scope)
        if caller is None:  # signed in at the handshake (connect refuses anyone else)
            raise _not_signed_in()
        return caller

    async def provide_input(self, content: dict[str, Any]) -> None:
        fields = _string_fields(content, required=("request_id", "value"), optional=(), allow_blank=("value",))
        if isinstance(fields, str):
            await self.send_error("invalid_message", fields)
            return
        if not self.running or self.recorder is None:
            await self.send_error("task_not_waiting", "No task is waiting for input.")  # as POST .../input answers
            return
        if len(fields["value"]) > services.MAX_ANSWER_CHARS:  # as POST /api/v1/tasks/{id}/input
            await self.send_error("input_too_large", f"`value` is longer than {services.MAX_ANSWER_CHARS} characters.")
            return
        try:
            self.recorder.provide_input(fields["request_id"], fields["value"])
        except InputMismatch as error:
            await self.send_error(error.code, error.message)

    async def cancel(self, content: dict[str, Any]) -> None:
        task = self.task if self.running else None
        if task is None:
            await self.send_error("no_task", "No task is running.")
            return
        await self.stop_run()
        await database_sync_to_async(services.task_cancel)(task_id=task.pk, message="Cancelled by the client.")
        await self.send_error("cancelled", "The task was cancelled.", task_id=task.pk)

    # --- messages from the channel layer ---------------------------------------------------

    async def task_cancelled(self, message: dict[str, Any]) -> None:
        """Someone else (an admin, the Task API) cancelled this session's task."""
        task = self.task if self.running else None
        if task is None or str(task.pk) != message.get("task_id"):
            return
        await self.stop_run()
        await self.send_error("cancelled", "The task was cancelled.", task_id=task.pk)

    # --- the run ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.run is not None and not self.run.done()

    async def stop_run(self) -> None:
        run, self.run = self.run, None
        if run is not None and not run.done():
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)

    async def leave_task_group(self) -> None:
        if self.task is None:
            return
        try:
            await self.channel_layer.group_discard(services.task_control_group(self.task.pk), self.channel_name)
        except Exception:
            # Membership expires on its own; a cancel sent to a gone channel is dropped.
            logger.warning("could not leave the group of task %s", self.task.pk, exc_info=True)

    async def drive(self, task: Task, agent: Agent, recorder: SessionRecorder) -> None:
        try:
            result = await self.run_agent(task, agent, recorder)
        except (AgentFailed, OrchestrationError) as error:
            outcome = ("error", error.code, error.message)
        except services.ClaimLost:
            return  # cancelled elsewhere; task_cancelled tells the client
        except Exception:
            logger.exception("interactive task %s failed", task.pk)
            outcome = ("error", "agent_error", "The agent stopped on an unexpected error.")
        else:
            outcome = ("complete", "", result)
        try:
            await self.conclude(task, recorder, outcome)
        except services.ClaimLost:
            return  # cancelled while it finished: the cancel wins, and task_cancelled said so

    async def conclude(self, task: Task, recorder: SessionRecorder, outcome: tuple[str, str, str]) -> None:
        # Recorded before it is announced: a client that sees the end finds the task finished.
        kind, code, text = outcome
        at = timezone.now().isoformat()
        if kind == "complete":
            await recorder.finish(Task.Status.COMPLETED, result=text)
            await self.send_json({"type": "complete", "result": text, "task_id": str(task.pk), "at": at})
            return
        await recorder.finish(Task.Status.FAILED, error={"code": code, "message": text})
        await self.send_error(code, text, task_id=task.pk)

    async def run_agent(self, task: Task, agent: Agent, recorder: SessionRecorder) -> str:
        instructions = await sync_to_async(selectors.agent_instructions)(agent)
        spec = RunSpec(
            task_input=task.input,
            model=task.model,
            deadline_s=services.agent_setting("DEADLINE_AGENT_S"),
            system_prompt=instructions.system_prompt,
            request_id=f"task_{task.pk.hex}",
            task_id=str(task.pk),
            owner_id=task.owner_id,
            api_key_id=task.api_key_id,
            prompt_template=instructions.prompt_template,
            prompt_version=instructions.prompt_version,
            payer=self.caller.without_rate_limits(),
        )
        return await AgentRuntime(agent, recorder).run(spec)

    async def send_error(self, code: str, message: str, *, task_id: Any = None) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if task_id is not None:
            frame["task_id"] = str(task_id)
        await self.send_json(frame)

    async def send_refusal(self, error: ServiceError) -> None:
        """An ``error`` frame of a refusal: its code and message, and the status and headers the
        HTTP doors answer the same refusal with (rate limits, ``Retry-After``)."""
        await self.send_json(
            {
                "type": "error",
                "code": error.code,
                "message": error.message,
                "status": error.status,
                "headers": error.headers(),
            }
        )

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content, cls=DjangoJSONEncoder)


def _string_fields(
    content: dict[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...], allow_blank: tuple[str, ...] = ()
) -> dict[str, str] | str:
    """The named string fields of a frame, or a message saying what is wrong with them."""
    fields: dict[str, str] = {}
    for name in (*required, *optional):
        value = content.get(name)
        if value is None:
            if name in required:
                return f"`{name}` is required."
            continue
        if not isinstance(value, str):
            return f"`{name}` must be a string."
        if "\x00" in value:
            return f"`{name}` must not contain null characters."
        if name in required and name not in allow_blank and not value.strip():
            return f"`{name}` must not be empty."
        fields[name] = value
    return fields


# --- the log as SSE ---------------------------------------------------------------------------

PING_EVERY_S = 15.0
# The browser waits this long before reconnecting a dropped feed.
RETRY_MS = 2000
POLL_EVERY_S = 2.0


def sse_frame(event: TaskEvent) -> bytes:
    return sse_event(event_body(event), event=event.type, id=event.seq)


class TaskLogStreamConsumer(AsyncHttpConsumer):
    """``GET /api/v1/tasks/{id}/events``: the task's log items as they are written, then ``end``.

    Resumes after ``Last-Event-ID`` (or ``?last_event_id=``). The ``end`` event's id is one past
    the last item, so a client that resumes after it gets 204 (which stops ``EventSource``).
    The relay runs as its own task, so the consumer keeps receiving ``http.disconnect`` and
    channel-layer nudges (``log.changed``) while it streams.
    """

    relay: asyncio.Task[None] | None = None
    log_group: str | None = None
    watch: AccessWatch | None = None
    closing: asyncio.Task[None] | None = None
    sent_through = 0

    async def http_request(self, message: dict[str, Any]) -> None:
        self.body.append(message.get("body", b""))
        if message.get("more_body"):
            return
        await self.handle(b"".join(self.body))
        if self.relay is None:
            await self.disconnect()
            raise StopConsumer()

    async def handle(self, body: bytes) -> None:
        self.request_id = request_id_from(CaseInsensitiveMapping(_header_texts(self.scope)))
        if self.scope["method"] != "GET":  # HEAD too: an event stream has no head without its body
            await self.send_error(MethodNotAllowed(self.scope["method"], ("GET",)))
            return
        caller = self.scope.get("caller")
        if caller is None:
            refusal = self.scope.get("access_refusal")
            await self.send_error(refusal or Unauthenticated("not_authenticated", "Authentication is required."))
            return
        try:
            task = await database_sync_to_async(selectors.task_get_owned)(
                user=caller.user_id, task_id=self.scope["url_route"]["kwargs"]["task_id"]
            )
            after = self.last_event_id()
        except ServiceError as error:
            await self.send_error(error)
            return
        if task.is_finished and after > await database_sync_to_async(_last_seq)(task.pk):
            await self.send_response(204, b"", headers=self.common_headers())
            return
        self.wake = asyncio.Event()
        await self.join_log_group(services.task_log_group(task.pk))
        await self.send_headers(status=200, headers=[*STREAM_HEADERS, *self.common_headers()])
        # The first bytes go out at once: the server sends the headers with them, and a browser's
        # EventSource opens only then (the first item or ping could be 15 s away).
        await self.send_body(sse_retry(RETRY_MS), more_body=True)
        self.sent_through = after
        self.watch = access_watch(user_id=caller.user_id, api_key_id=caller.api_key_id, on_lost=self.access_lost)
        self.relay = asyncio.create_task(self.relay_log(task.pk, after))

    async def join_log_group(self, group: str) -> None:
        """Nudges only wake the relay before its next poll: with Redis out of reach the feed is
        served from the database alone, not refused."""
        try:
            await self.channel_layer.group_add(group, self.channel_name)
        except (RedisError, OSError):
            logger.warning("task feed %s: no nudges while Redis is out of reach; polling", group)
            return
        self.log_group = group

    def access_lost(self, code: str) -> None:
        """The feed's key or account was stopped elsewhere: end it with an ``error`` event."""
        if self.closing is None:
            self.closing = asyncio.get_running_loop().create_task(self.end_for(code))

    async def end_for(self, code: str) -> None:
        relay, self.relay = self.relay, None
        if relay is not None and not relay.done():
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
        lost = sse_event({"code": code, "message": REFUSALS[code]}, event="error", id=self.sent_through)
        with contextlib.suppress(Exception):
            await self.send_body(lost)
        await self.channel_layer.send(self.channel_name, {"type": "relay.finished"})

    def last_event_id(self) -> int:
        headers = dict(self.scope.get("headers", []))
        raw = headers.get(b"last-event-id", b"").decode("latin1").strip()
        if not raw:
            query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
            raw = (query.get("last_event_id") or [""])[0].strip()
        if not raw:
            return 0
        after = event_id_from(raw)
        if after is None:
            raise InvalidRequest("invalid_last_event_id", "Last-Event-ID must be a whole number.")
        return after

    def common_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"X-Request-ID", self.request_id.encode())]

    async def send_error(self, error: ServiceError) -> None:
        body = json.dumps(error_body_of(error, self.request_id)).encode()
        headers = [(b"Content-Type", b"application/json"), *self.common_headers()]
        headers += [(name.encode("latin1"), value.encode("latin1")) for name, value in error.headers().items()]
        await self.send_response(error.status, body, headers=headers)

    async def relay_log(self, task_id: uuid.UUID, after: int) -> None:
        last_sent = time.monotonic()
        while True:
            self.wake.clear()
            events, finished = await database_sync_to_async(_log_after)(task_id, after)
            for event in events:
                await self.send_body(sse_frame(event), more_body=True)
                after, last_sent = event.seq, time.monotonic()
                self.sent_through = after
            if finished and not events:
                await self.send_body(await database_sync_to_async(_end_frame)(task_id, after))
                break
            if time.monotonic() - last_sent >= PING_EVERY_S:
                await self.send_body(PING, more_body=True)
                last_sent = time.monotonic()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=min(POLL_EVERY_S, PING_EVERY_S))
            except TimeoutError:
                pass
        await self.channel_layer.send(self.channel_name, {"type": "relay.finished"})

    async def log_changed(self, message: dict[str, Any]) -> None:
        self.wake.set()

    async def relay_finished(self, message: dict[str, Any]) -> None:
        await self.disconnect()
        raise StopConsumer()

    async def disconnect(self) -> None:
        if self.watch is not None:
            self.watch.close()
        relay, self.relay = self.relay, None
        if relay is not None and not relay.done():
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
        group, self.log_group = self.log_group, None
        if group is not None:
            with contextlib.suppress(RedisError, OSError):  # a member that is gone only drops its nudges
                await self.channel_layer.group_discard(group, self.channel_name)


def _header_texts(scope: dict[str, Any]) -> dict[str, str]:
    return {name.decode("latin1"): value.decode("latin1") for name, value in scope.get("headers", [])}


def _last_seq(task_id: uuid.UUID) -> int:
    return TaskEvent.objects.filter(task_id=task_id).order_by("-seq").values_list("seq", flat=True).first() or 0


def _log_after(task_id: uuid.UUID, after: int) -> tuple[list[TaskEvent], bool]:
    # Read the status first: items written before it finished are then surely in the read below.
    finished = Task.objects.filter(pk=task_id).exclude(status__in=Task.UNFINISHED).exists()
    return selectors.task_events_after(task_id=task_id, seq=after, limit=200), finished


def _end_frame(task_id: uuid.UUID, after: int) -> bytes:
    task = Task.objects.get(pk=task_id)
    body = {"status": task.status, "result": task.result or None, "error": task.error}
    return sse_event(body, event="end", id=after + 1)

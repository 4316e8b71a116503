"""Feedback on answers: a thumbs up or down, with a comment, on one call of the person's own.

Feedback is stored beside the call's request-log row (same request id) with the model, deployment
and experiment variant that answered, so an experiment's comparison can count it per variant.
"""

from __future__ import annotations

from django.db.models import Q

from orchestration.errors import NotFound
from orchestration.models import Feedback, RequestLog
from orchestration.requestlog import requestlog_flush

# A reply's row reaches the database within the writer's flush interval; a thumb clicked sooner
# waits this long at most for this process's writer (orchestration/requestlog.py).
FLUSH_WAIT_S = 2.0


def _own_call(*, user_id: int, request_id: str, message_id: int | None) -> RequestLog | None:
    wanted = Q(request_id=request_id) if request_id else Q(message_id=message_id)
    return RequestLog.objects.filter(wanted, user_id=user_id).order_by("-created_at").first()


def call_of_user(*, user_id: int, request_id: str = "", message_id: int | None = None) -> RequestLog:
    """The user's own call by request id or chat message id; NotFound for anyone else's."""
    row = _own_call(user_id=user_id, request_id=request_id, message_id=message_id)
    if row is None and requestlog_flush(timeout=FLUSH_WAIT_S):
        row = _own_call(user_id=user_id, request_id=request_id, message_id=message_id)
    if row is None:
        what = f"request id {request_id!r}" if request_id else f"message {message_id}"
        raise NotFound("call_not_found", f"No call of yours has the {what}.")
    return row


def feedback_give(
    *, user_id: int, score: int, comment: str = "", request_id: str = "", message_id: int | None = None
) -> Feedback:
    """Record (or change) the user's feedback on one of their calls."""
    call = call_of_user(user_id=user_id, request_id=request_id, message_id=message_id)
    feedback, _ = Feedback.objects.update_or_create(
        user_id=user_id,
        request_id=call.request_id,
        defaults={
            "score": score,
            "comment": comment,
            "model": call.model_served,
            "deployment": call.deployment,
            "experiment": call.experiment,
            "variant": call.variant,
            "message_id": call.message_id,
        },
    )
    return feedback

"""``POST /api/v1/feedback``: a thumbs up or down on one of the caller's own calls."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestration.fields import TextField
from orchestration.models import Feedback
from orchestration.routing.feedback import feedback_give


class FeedbackInput(serializers.Serializer):
    request_id = TextField(max_length=64, required=False)
    message_id = serializers.IntegerField(min_value=1, required=False)
    score = serializers.ChoiceField(choices=[1, -1], help_text="+1 (thumbs up) or -1 (thumbs down)")
    comment = TextField(max_length=2000, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("request_id" in attrs) == ("message_id" in attrs):
            raise serializers.ValidationError("Name the call with a request_id or a message_id (one of them).")
        return attrs


class FeedbackOutput(serializers.ModelSerializer):
    class Meta:
        model = Feedback
        fields = [
            "id",
            "request_id",
            "message_id",
            "score",
            "comment",
            "model",
            "deployment",
            "experiment",
            "variant",
            "created_at",
        ]


class FeedbackCreateApi(APIView):
    @extend_schema(request=FeedbackInput, responses={201: FeedbackOutput})
    def post(self, request: Request) -> Response:
        data = FeedbackInput(data=request.data)
        data.is_valid(raise_exception=True)
        feedback = feedback_give(user_id=request.user.pk, **data.validated_data)
        return Response(FeedbackOutput(feedback).data, status=status.HTTP_201_CREATED)

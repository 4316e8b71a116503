"""A message that is a role and a text alone is read by a shortcut (``_plain_message``): every
message, plausible or not, reads the same through it as through the full checks (``_message``)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.errors import InvalidRequest
from orchestration.validation import _message, _messages
from tests.orchestration.test_fuzz import any_json, message


def reading(read: Any) -> Any:
    try:
        return read()
    except InvalidRequest as refused:
        return (refused.code, refused.message, refused.param)


plain = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "robot", "", "User"]),
        "content": st.text(max_size=20) | any_json,
    }
)


@settings(max_examples=400, deadline=None)
@given(value=message | plain | any_json)
def test_a_message_reads_the_same_with_the_shortcut_and_without(value: Any) -> None:
    assert reading(lambda: _messages([value], "messages")) == reading(lambda: [_message(value, "messages[0]")])


def test_a_conversation_of_plain_messages_reads_as_roles_and_texts() -> None:
    read = _messages(
        [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": ""},
        ],
        "messages",
    )
    assert [(m.role, m.content, m.tool_calls, m.name) for m in read] == [
        ("system", "Be brief.", None, None),
        ("user", "Hi", None, None),
        ("assistant", "", None, None),
    ]

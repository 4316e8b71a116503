"""``json_document``: orjson reads first, the standard parser decides whatever orjson refuses or
may read otherwise; clients see the standard parser's values and refusals either way."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.errors import InvalidRequest
from orchestration.validation import MAX_DEPTH, json_document


def standard_reading(body: bytes | str) -> Any:
    """The document as the standard parser alone reads it (what ``json_document`` answered before orjson)."""

    def refuse(name: str) -> Any:
        raise ValueError(name)

    return json.loads(body, parse_constant=refuse)


def standard_complaint(body: bytes) -> str:
    """What the running Python's own parser says of ``body`` (Python 3.13 reworded some of it:
    "Illegal trailing comma" where 3.11 said "Expecting property name")."""
    try:
        json.loads(body)
    except json.JSONDecodeError as error:
        return f"not valid JSON: {error.msg}"
    raise AssertionError(f"the standard parser reads {body!r}")


def nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"[123456789012345678901234567890]",
        b"[18446744073709551616]",  # 2**64: orjson's float, the standard parser's int
        b"[-9223372036854775809]",
        b"123456789012345678901234567890",
        b'{"a": {"b": [1, 99999999999999999999999]}}',
        b"[1e19, 1e400, -1e400, 1.7976931348623159e308, 0.1e-400]",
        b"[18446744073709551615, -9223372036854775808, -0, -0.0, 1E2]",
        b'{"a": 1, "a": 2}',
        "\ufeff{}".encode(),  # a UTF-8 byte order mark
        '{"q": "caf\u00e9 \u2028 \\ud83d\\ude00"}'.encode(),
        '{"q": "caf\u00e9"}'.encode("utf-16"),
        '"text"',
        nested(MAX_DEPTH),
    ],
)
def test_a_document_reads_as_the_standard_parser_reads_it(body: bytes | str) -> None:
    assert repr(json_document(body)) == repr(standard_reading(body))


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b'{"a": "\\ud800"}', "invalid_unicode", "lone surrogate"),
        (b'{"\\udc00": 1}', "invalid_unicode", "lone surrogate"),
        ('{"a": "\\ud800"}', "invalid_unicode", "lone surrogate"),
        (b'{"a": NaN}', "invalid_json", "NaN is not a JSON number"),
        (b"[-Infinity]", "invalid_json", "-Infinity is not a JSON number"),
        (nested(MAX_DEPTH + 1), "invalid_json", f"nests deeper than {MAX_DEPTH} levels"),
        (nested(900), "invalid_json", f"nests deeper than {MAX_DEPTH} levels"),
        (nested(5_000), "invalid_json", f"nests deeper than {MAX_DEPTH} levels"),
        (b'{"a": "\xff"}', "invalid_json", "not valid UTF-8"),
        (b'{"a": 1,}', "invalid_json", standard_complaint(b'{"a": 1,}')),
        (b'{"a": "\x01"}', "invalid_json", standard_complaint(b'{"a": "\x01"}')),
        (b'{"a": 1} x', "invalid_json", standard_complaint(b'{"a": 1} x')),
        (b"[" + b"1" * 5_000 + b"]", "invalid_json", "a number of more than"),
    ],
)
def test_a_document_refused_is_refused_in_the_standard_parsers_words(body: bytes | str, code: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        json_document(body)
    assert refused.value.code == code
    assert words in refused.value.message


def test_a_long_integer_inside_a_deep_document_is_exact() -> None:
    body = ("[" * 40 + "18446744073709551617" + "]" * 40).encode()
    value = json_document(body)
    for _ in range(40):
        value = value[0]
    assert value == 2**64 + 1
    assert type(value) is int


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, ascii_only=st.booleans())
def test_any_document_reads_as_the_standard_parser_reads_it(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only)
    assert repr(json_document(body.encode())) == repr(standard_reading(body))
    assert repr(json_document(body)) == repr(standard_reading(body))

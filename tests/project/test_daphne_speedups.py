"""What the edge changes in daphne's process beyond hardening: Twisted's content-type parse is memoized."""

from __future__ import annotations

from twisted.web import http

from project.edge.daphne import daphne_harden


def test_content_type_parses_are_remembered_and_give_the_same_answer() -> None:
    daphne_harden()
    parse = http._parseContentType
    parse.cache_clear()  # type: ignore[attr-defined]

    answers = [parse(b"application/json; charset=utf-8") for _ in range(3)]
    other = parse(b"Multipart/Form-Data; boundary=x")

    assert answers == [b"application/json"] * 3 and other == b"multipart/form-data"
    assert parse.cache_info().hits == 2  # type: ignore[attr-defined]

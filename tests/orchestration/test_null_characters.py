"""What PostgreSQL cannot store: a null character (U+0000) in text or ``jsonb``
(``orchestration.database.jsonb_storable`` and ``null_character_path``)."""

from __future__ import annotations

from orchestration.database import jsonb_storable, null_character_path


def test_a_document_keeps_its_shape_with_each_null_character_replaced() -> None:
    document = {"a\x00": ["x\x00y", {"n": 1, "t": None, "ok": "fine"}], "b": 2.5}
    assert jsonb_storable(document) == {"a\ufffd": ["x\ufffdy", {"n": 1, "t": None, "ok": "fine"}], "b": 2.5}
    clean = {"a": ["b", {"c": "d"}]}
    assert jsonb_storable(clean) == clean and jsonb_storable("plain") == "plain"


def test_the_path_of_the_first_null_character_is_named_as_a_parameter() -> None:
    assert null_character_path({"input": [{"role": "user", "content": "a\x00"}]}) == "input[0].content"
    assert null_character_path({"metadata": {"k\x00": "v"}}) == "metadata.k\x00"
    assert null_character_path({"input": "fine", "n": [1, 2]}) is None

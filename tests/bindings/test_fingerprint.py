"""Parsing Canonical Form and CRC-64-AVRO against the Avro specification's test vectors."""

from __future__ import annotations

import json

import pytest
from fastavro.schema import to_parsing_canonical_form

from satchel.bindings.fingerprint import (
    fingerprint64,
    fingerprint_hex,
    parsing_canonical_form,
    to_signed64,
    to_unsigned64,
)
from satchel.bindings.schema import response_schema

from .models import Movie, Order, Point, Tree

# share/test/data/schema-tests.txt in apache/avro: (input, canonical form, fingerprint as a Java long)
SPEC_VECTORS = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"null"}', '"null"', None),
    ('"boolean"', '"boolean"', -6970731678124411036),
    ('{"type":"boolean"}', '"boolean"', None),
    ('"int"', '"int"', 8247732601305521295),
    ('{"type":"int"}', '"int"', None),
    ('"long"', '"long"', -3434872931120570953),
    ('"float"', '"float"', 5583340709985441680),
    ('"double"', '"double"', -8181574048448539266),
    ('"bytes"', '"bytes"', 5746618253357095269),
    ('"string"', '"string"', -8142146995180207161),
    ("[  ]", "[]", -1241056759729112623),
    ('[ "int"  ]', '["int"]', -5232228896498058493),
    ('[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090),
    (
        '{"fields":[], "type":"record", "name":"foo"}',
        '{"name":"foo","type":"record","fields":[]}',
        -4824392279771201922,
    ),
    (
        '{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
        '{"name":"x.y.foo","type":"record","fields":[]}',
        5916914534497305771,
    ),
    (
        '{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}',
        '{"name":"a.b.foo","type":"record","fields":[]}',
        -4616218487480524110,
    ),
    (
        '{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}',
        '{"name":"foo","type":"record","fields":[]}',
        -4824392279771201922,
    ),
    (
        '{"fields":[], "type":"record", "name":"foo", "aliases":["foo","bar"]}',
        '{"name":"foo","type":"record","fields":[]}',
        -4824392279771201922,
    ),
    (
        '{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}',
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
        7843277075252814651,
    ),
    (
        '{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},\n'
        '            {"order":"descending","name":"f2","doc":"Hello","type":"int"}],\n'
        '  "type":"record", "name":"foo"\n}',
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
        -4860222112080293046,
    ),
    (
        '{"type":"enum", "name":"foo", "symbols":["A1"]}',
        '{"name":"foo","type":"enum","symbols":["A1"]}',
        -6342190197741309591,
    ),
    (
        '{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
        '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
        -4448647247586288245,
    ),
    (
        '{"name":"foo","type":"fixed","size":15}',
        '{"name":"foo","type":"fixed","size":15}',
        1756455273707447556,
    ),
    (
        '{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}',
        '{"name":"x.y.z.foo","type":"fixed","size":32}',
        -3064184465700546786,
    ),
    ('{ "items":{"type":"null"}, "type":"array"}', '{"type":"array","items":"null"}', -589620603366471059),
    ('{ "values":"string", "type":"map"}', '{"type":"map","values":"string"}', -8732877298790414990),
    (
        '{"name":"PigValue","type":"record",\n'
        '   "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
        '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
        -1759257747318642341,
    ),
]


@pytest.mark.parametrize("text, canonical, fingerprint", SPEC_VECTORS)
def test_spec_vectors(text, canonical, fingerprint):
    assert parsing_canonical_form(text) == canonical
    assert parsing_canonical_form(json.loads(text)) == canonical
    if fingerprint is not None:
        assert fingerprint64(text) == to_unsigned64(fingerprint)
        assert to_signed64(fingerprint64(text)) == fingerprint


def test_brief_values_and_hex():
    assert fingerprint64('"int"') == 0x7275D51A3F395C8F
    assert fingerprint64("int") == 0x7275D51A3F395C8F
    assert fingerprint64('"null"') == 0x63DD24E7CC258F8A
    assert fingerprint_hex('"int"') == "7275d51a3f395c8f"
    assert fingerprint_hex("null") == "63dd24e7cc258f8a"
    assert 0 <= fingerprint64('"long"') < 2**64


def test_logical_types_and_custom_attributes_are_stripped():
    assert fingerprint64({"type": "long", "logicalType": "timestamp-micros"}) == fingerprint64("long")
    with_python = {"type": "enum", "name": "E", "namespace": "m", "symbols": ["A"], "python": "m:E"}
    assert parsing_canonical_form(with_python) == '{"name":"m.E","type":"enum","symbols":["A"]}'


def test_unicode_is_written_as_utf8():
    schema = {"type": "enum", "name": "E", "symbols": ["A"], "doc": "\u00e9"}
    assert parsing_canonical_form(schema) == '{"name":"E","type":"enum","symbols":["A"]}'
    record = '{"type":"record","name":"R","fields":[{"name":"f","type":"string","doc":"\\u00e9"}]}'
    assert (
        parsing_canonical_form(record)
        == '{"name":"R","type":"record","fields":[{"name":"f","type":"string"}]}'
    )


@pytest.mark.parametrize("annotation", [Point, Tree, Movie, Order, dict[str, list[Point]], tuple[int, Point]])
def test_agrees_with_fastavro_on_our_schemas(annotation):
    schema = response_schema("f", annotation)
    assert parsing_canonical_form(schema) == to_parsing_canonical_form(schema)


def test_references_use_full_names_and_repeat_as_names():
    schema = response_schema("f", dict[str, list[Tree]])
    assert parsing_canonical_form(schema) == (
        '{"type":"map","values":{"type":"array","items":{"name":"tests.bindings.models.Tree","type":"record",'
        '"fields":[{"name":"value","type":"long"},{"name":"children","type":{"type":"array",'
        '"items":"tests.bindings.models.Tree"}}]}}}'
    )

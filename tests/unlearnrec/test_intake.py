"""Reading ticket files (``unlearnrec/records/intake.py``): JSON and CSV rows become ``TicketIn``
with aware UTC times; malformed rows are kept with their problems; unreadable files are refused
with a reason naming the file and line. No database involved."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from unlearnrec.ledger import TicketIn
from unlearnrec.records.intake import FileIntake, parse_ticket_bytes, parse_ticket_file

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

GOOD = [
    {
        "external_id": "DSAR-1",
        "kind": "erase_user",
        "subject": "user-1",
        "legal_basis": "GDPR-17(1)(a)",
        "received_at": "2024-05-01T10:00:00+02:00",
    },
    {
        "external_id": "DSAR-2",
        "kind": "erase_interactions",
        "subject": "user-2",
        "items": ["i1", "i2", 3],
        "legal_basis": "CCPA-1798.105",
        "received_at": "2024-05-02T09:15:00Z",
    },
    {
        "external_id": "DSAR-3",
        "kind": "take_down_item",
        "items": "item-9",
        "legal_basis": "GDPR-17(1)(d)",
        "received_at": "2024-05-03T08:00:00",
    },
]


def parse_json(obj, name: str = "tickets.json", **kw) -> FileIntake:
    return parse_ticket_bytes(json.dumps(obj).encode(), name, now=NOW, **kw)


def parse_csv(text: str, name: str = "tickets.csv", **kw) -> FileIntake:
    return parse_ticket_bytes(text.encode(), name, now=NOW, **kw)


def assert_good(tickets: list[TicketIn], name: str, sources: list[str]) -> None:
    assert [t.external_id for t in tickets] == ["DSAR-1", "DSAR-2", "DSAR-3"]
    assert all(t.problems == () for t in tickets), [t.problems for t in tickets]
    assert [t.source for t in tickets] == sources
    a, b, c = tickets
    assert (a.kind, a.subject, a.items, a.legal_basis) == (
        "erase_user",
        "user-1",
        (),
        "GDPR-17(1)(a)",
    )
    assert (b.kind, b.subject, b.items) == ("erase_interactions", "user-2", ("i1", "i2", "3"))
    assert (c.kind, c.subject, c.items) == ("take_down_item", None, ("item-9",))
    # Every time is aware UTC: +02:00 converted, Z understood, a zone-less time taken as UTC.
    assert a.received_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert b.received_at == datetime(2024, 5, 2, 9, 15, tzinfo=UTC)
    assert c.received_at == datetime(2024, 5, 3, 8, 0, tzinfo=UTC)
    assert all(t.received_at.utcoffset() == timedelta(0) for t in tickets)


# -- reading ------------------------------------------------------------------------------------


def test_json_list_parses_to_tickets():
    """A JSON list of objects gives one ticket per object, in order, sourced ``name#n``."""
    result = parse_json(GOOD)
    assert result.refused is None
    assert result.sha256 == hashlib.sha256(json.dumps(GOOD).encode()).hexdigest()
    assert_good(result.tickets, "tickets.json", [f"tickets.json#{n}" for n in (1, 2, 3)])


def test_json_tickets_wrapper_parses_like_a_list():
    """``{"tickets": [...]}`` reads like the bare list."""
    result = parse_json({"tickets": GOOD}, "wrapped.json")
    assert result.refused is None
    assert_good(result.tickets, "wrapped.json", [f"wrapped.json#{n}" for n in (1, 2, 3)])


def test_json_single_object_is_one_ticket():
    """A single JSON object is one ticket."""
    result = parse_json(GOOD[0], "one.json")
    assert result.refused is None
    assert len(result.tickets) == 1
    (t,) = result.tickets
    assert t.external_id == "DSAR-1" and t.source == "one.json#1" and t.problems == ()
    assert t.received_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_csv_parses_to_tickets():
    """CSV rows (header first, ``;``-separated items) give the same tickets, sourced
    ``name:line``; a UTF-8 byte-order mark is accepted."""
    text = (
        "external_id,kind,subject,items,legal_basis,received_at\n"
        "DSAR-1,erase_user,user-1,,GDPR-17(1)(a),2024-05-01T10:00:00+02:00\n"
        "DSAR-2,erase_interactions,user-2,i1; i2 ;3,CCPA-1798.105,2024-05-02T09:15:00Z\n"
        "DSAR-3,take_down_item,,item-9,GDPR-17(1)(d),2024-05-03T08:00:00\n"
    )
    result = parse_ticket_bytes(b"\xef\xbb\xbf" + text.encode(), "tickets.csv", now=NOW)
    assert result.refused is None
    assert_good(result.tickets, "tickets.csv", ["tickets.csv:2", "tickets.csv:3", "tickets.csv:4"])


def test_missing_received_at_is_now_and_suffix_case_is_ignored():
    """No ``received_at`` means received now; ``.JSON`` is a JSON file too."""
    result = parse_json([{"external_id": "X", "kind": "erase_user", "subject": "u"}], "UP.JSON")
    assert result.refused is None
    (t,) = result.tickets
    assert t.received_at == NOW and t.problems == ()


def test_parse_ticket_file_reads_a_file(tmp_path):
    """``parse_ticket_file`` reads the file and keeps its path; a missing file is refused."""
    path = tmp_path / "inbox.json"
    path.write_text(json.dumps(GOOD), encoding="utf-8")
    result = parse_ticket_file(path, now=NOW)
    assert result.path == path and result.refused is None
    assert len(result.tickets) == 3
    gone = parse_ticket_file(tmp_path / "gone.json", now=NOW)
    assert gone.refused is not None and gone.refused.startswith("gone.json: cannot read")
    assert gone.tickets == []


# -- malformed rows become tickets with problems ------------------------------------------------


def test_malformed_json_row_keeps_its_problems_naming_file_and_row():
    """A bad row is still a ticket; its problems name ``file.json#row``; good rows are clean."""
    rows = [GOOD[0], {**GOOD[1], "kind": "forget_me", "received_at": "yesterday"}, GOOD[2]]
    result = parse_json(rows, "mixed.json")
    assert result.refused is None
    good1, bad, good3 = result.tickets
    assert good1.problems == () and good3.problems == ()
    assert bad.external_id == "DSAR-2"
    assert bad.problems
    assert all(p.startswith("mixed.json#2: ") for p in bad.problems)
    assert any("kind is not one of" in p for p in bad.problems)
    assert any("received_at is not an ISO 8601 time" in p for p in bad.problems)
    # Problems name fields, never quote the values (they end up in the audit trail).
    assert not any("forget_me" in p or "yesterday" in p for p in bad.problems)
    assert bad.kind == ""  # not a code: dropped
    assert bad.received_at == NOW


def test_malformed_csv_row_names_file_and_line():
    """In CSV the problem names ``file.csv:line`` (the header is line 1); extra cells are
    reported as unknown fields."""
    text = (
        "external_id,kind,subject,items\n"
        "OK-1,erase_user,u1,\n"
        "BAD-2,erase_interactions,u2,\n"
        "BAD-3,erase_user,u3,,surplus\n"
    )
    result = parse_csv(text, "mixed.csv")
    assert result.refused is None
    ok, bad2, bad3 = result.tickets
    assert ok.problems == ()
    assert bad2.problems == ("mixed.csv:3: erase_interactions needs the items to erase",)
    assert bad3.problems == ("mixed.csv:4: unknown fields ['_extra']",)


def test_missing_external_id_gets_an_invalid_fallback_id():
    """A row without an external id gets a stable ``invalid-<file hash>-<row>`` id, so the
    ledger can record and reject it, and resubmitting the same file does not duplicate it."""
    rows = [{"kind": "erase_user", "subject": "u"}, {"external_id": "  ", "kind": "erase_user"}]
    result = parse_json(rows, "noid.json")
    first, second = result.tickets
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:12]
    assert first.external_id == f"invalid-{digest}-1"
    assert second.external_id == f"invalid-{digest}-2"
    assert first.external_id.startswith("invalid-")
    assert "noid.json#1: external_id is missing" in first.problems
    assert "noid.json#2: external_id is missing" in second.problems
    again = parse_json(rows, "noid.json")
    assert [t.external_id for t in again.tickets] == [first.external_id, second.external_id]
    other = parse_json([*rows, GOOD[0]], "noid.json")
    assert other.tickets[0].external_id != first.external_id


def test_overlong_external_id_gets_the_fallback():
    """An external id over 200 characters is replaced by the fallback id, with a problem."""
    result = parse_json([{**GOOD[0], "external_id": "x" * 201}], "long.json")
    (t,) = result.tickets
    assert t.external_id.startswith("invalid-")
    assert "long.json#1: external_id longer than 200 characters" in t.problems


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"kind": "erase_user"}, "erase_user needs a subject (the user's id)"),
        ({"kind": "erase_interactions", "subject": "u"}, "needs the items to erase"),
        ({"kind": "take_down_item", "items": ["a", "b"]}, "take_down_item needs exactly one item"),
        ({"kind": "take_down_item", "items": {"a": 1}}, "items must be a list of item ids"),
        ({"kind": "erase_user", "subject": "u", "colour": "red"}, "unknown fields ['colour']"),
        ({"kind": ""}, "kind is missing (one of erase_user, erase_interactions, take_down_item)"),
    ],
)
def test_row_rules(record, problem):
    """Kind-specific requirements and unknown fields become problems naming the row."""
    result = parse_json([{"external_id": "R", **record}], "rules.json")
    (t,) = result.tickets
    assert any(p.startswith("rules.json#1: ") and problem in p for p in t.problems), t.problems


def test_row_that_is_not_an_object_is_a_problem_ticket():
    """A list element that is not an object still gives a ticket, marked as such."""
    result = parse_json([GOOD[0], "DSAR-2"], "odd.json")
    assert result.refused is None
    t = result.tickets[1]
    assert t.external_id.startswith("invalid-")
    assert t.source == "odd.json#2 (not an object)"
    assert t.problems and all(p.startswith("odd.json#2 (not an object): ") for p in t.problems)


# -- whole files refused ------------------------------------------------------------------------


def assert_refused(result: FileIntake, reason: str) -> None:
    assert result.refused is not None
    assert reason in result.refused, result.refused
    assert result.tickets == []


@pytest.mark.parametrize("name", ["tickets.txt", "tickets.json.bak", "tickets", "t.xlsx"])
def test_other_file_types_are_refused(name):
    """Only ``.json`` and ``.csv`` files are read."""
    result = parse_ticket_bytes(json.dumps(GOOD).encode(), name, now=NOW)
    assert_refused(result, f"{name}: not a ticket file (expected .json or .csv)")


def test_file_over_max_bytes_is_refused(tmp_path):
    """Files over ``max_bytes`` are refused (the file variant checks the size before reading)."""
    raw = json.dumps(GOOD).encode()
    assert_refused(
        parse_ticket_bytes(raw, "big.json", now=NOW, max_bytes=len(raw) - 1),
        f"big.json: {len(raw)} bytes, over the {len(raw) - 1}-byte limit",
    )
    assert parse_ticket_bytes(raw, "big.json", now=NOW, max_bytes=len(raw)).refused is None
    path = tmp_path / "big.csv"
    path.write_bytes(b"external_id,kind\n" + b"A,erase_user\n" * 100)
    assert_refused(parse_ticket_file(path, now=NOW, max_bytes=100), "big.csv: 1317 bytes")


def test_non_utf8_file_is_refused_naming_the_line():
    """Bytes that are not UTF-8 refuse the file, naming the line of the first bad byte."""
    raw = b"external_id,kind,subject\nA,erase_user,u1\nB,erase_user,M\xfcller\n"
    assert_refused(parse_ticket_bytes(raw, "latin1.csv", now=NOW), "latin1.csv:3: not UTF-8")


def test_broken_json_is_refused_naming_the_line():
    """Invalid JSON refuses the file with ``name:line`` of the syntax error."""
    raw = b'[\n  {"external_id": "A", "kind": "erase_user",,}\n]\n'
    assert_refused(parse_ticket_bytes(raw, "broken.json", now=NOW), "broken.json:2: not valid JSON")


@pytest.mark.parametrize("doc", ["42", '"DSAR-1"', "null", '{"tickets": 5}'])
def test_json_that_is_no_ticket_container_is_refused(doc):
    """A JSON document that is not an object, a list or ``{"tickets": [...]}`` is refused."""
    assert_refused(
        parse_ticket_bytes(doc.encode(), "scalar.json", now=NOW),
        "scalar.json: expected a ticket object",
    )


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("external_id,subject\nA,u\n", "['kind']"),
        ("id,kind,subject\nA,erase_user,u\n", "['external_id']"),
        ("subject\nu\n", "['external_id', 'kind']"),
        ("", "['external_id', 'kind']"),
    ],
)
def test_csv_without_required_header_is_refused_naming_line_1(text, missing):
    """A CSV whose header lacks ``external_id`` or ``kind`` is refused at line 1."""
    assert_refused(parse_csv(text, "noheader.csv"), f"noheader.csv:1: CSV header lacks {missing}")


# -- known bugs (see the report that came with these tests) -------------------------------------


def test_deeply_nested_json_is_refused_not_raised():
    """A small but deeply nested JSON file must be refused, not crash the inbox run."""
    result = parse_ticket_bytes(b"[" * 100_000, "deep.json", now=NOW)
    assert_refused(result, "deep.json")


def test_csv_error_reason_names_the_file():
    """A CSV the csv module cannot read (a field over its limit) is refused naming the file."""
    text = "external_id,kind,subject\nA,erase_user," + "x" * 200_000 + "\n"
    assert_refused(parse_csv(text, "huge-field.csv"), "huge-field.csv")


def test_non_utf8_line_is_right_after_a_bom():
    """The line of a bad byte is right even when the file starts with a UTF-8 BOM."""
    raw = b"\xef\xbb\xbfexternal_id,kind\n\n\xff\n"
    assert_refused(parse_ticket_bytes(raw, "bom.csv", now=NOW), "bom.csv:3: not UTF-8")


def test_integer_zero_subject_is_kept():
    """User id 0 sent as a JSON number is a subject like any other."""
    result = parse_json([{"external_id": "Z", "kind": "erase_user", "subject": 0}], "zero.json")
    (t,) = result.tickets
    assert t.subject == "0" and t.problems == ()

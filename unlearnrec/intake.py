"""Reading deletion tickets from files (JSON or CSV) dropped in the inbox or given to the CLI.

A file that cannot be read as tickets at all (wrong type, too large, not UTF-8, broken JSON) is
*refused* with a reason naming the file and line; the rest of the inbox is unaffected. A row that
can be read but is malformed still becomes a ticket, carrying its problems, so that the ledger
records it and rejects it with that reason: nothing is dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from unlearnrec.ledger.tickets import TicketIn
from unlearnrec.policy import TICKET_KINDS

FIELDS = ("external_id", "kind", "subject", "items", "legal_basis", "received_at")
SUFFIXES = (".json", ".csv")


@dataclass
class FileIntake:
    path: Path
    tickets: list[TicketIn] = field(default_factory=list)
    refused: str | None = None  # why the whole file was refused
    sha256: str = ""


def _parse_time(value: Any, now: datetime) -> tuple[datetime, str | None]:
    """ISO 8601 -> aware UTC. Missing -> ``now``; input without a zone is taken as UTC."""
    if value in (None, ""):
        return now, None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return now, f"received_at {str(value)[:40]!r} is not an ISO 8601 time"
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC), None
    return parsed.astimezone(UTC), None


def _text(value: Any) -> str:
    """A field as text: None is missing, 0 is "0" (falsy values are real ids)."""
    return "" if value is None else str(value).strip()


def _items(value: Any) -> tuple[tuple[str, ...], str | None]:
    if value is None or value == "":
        return (), None
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(";") if v.strip()), None
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, (str, int)) and not isinstance(v, bool) for v in value
    ):
        return tuple(str(v).strip() for v in value), None
    return (), "items must be a list of item ids or a ';'-separated string"


def ticket_from_record(
    record: dict[str, Any], *, where: str, fallback_id: str, now: datetime
) -> TicketIn:
    """One ticket from a mapping; problems are collected, not raised."""
    problems: list[str] = []
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        problems.append(f"{where}: unknown fields {unknown}")
    external_id = _text(record.get("external_id"))
    if not external_id:
        problems.append(f"{where}: external_id is missing")
        external_id = fallback_id
    elif len(external_id) > 200:
        problems.append(f"{where}: external_id longer than 200 characters")
        external_id = fallback_id
    kind = _text(record.get("kind"))
    if kind not in TICKET_KINDS:
        problems.append(f"{where}: kind {kind[:40]!r} is not one of {', '.join(TICKET_KINDS)}")
    subject = _text(record.get("subject")) or None
    items, problem = _items(record.get("items"))
    if problem:
        problems.append(f"{where}: {problem}")
    if kind in ("erase_user", "erase_interactions") and not subject:
        problems.append(f"{where}: {kind} needs a subject (the user's id)")
    if kind == "erase_interactions" and not items:
        problems.append(f"{where}: erase_interactions needs the items to erase")
    if kind == "take_down_item" and len(items) != 1:
        problems.append(f"{where}: take_down_item needs exactly one item")
    received_at, problem = _parse_time(record.get("received_at"), now)
    if problem:
        problems.append(f"{where}: {problem}")
    return TicketIn(
        external_id=external_id,
        kind=kind,
        subject=subject[:200] if subject else None,
        items=items,
        legal_basis=_text(record.get("legal_basis"))[:40],
        received_at=received_at,
        source=where,
        problems=tuple(problems),
    )


def _records_from_json(text: str, name: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise ValueError(f"{name}: JSON nested too deeply to be a ticket file") from None
    if isinstance(data, dict) and "tickets" in data:
        data = data["tickets"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError(
            f"{name}: expected a ticket object, a list of them or {{'tickets': [...]}}"
        )
    return data


def parse_ticket_bytes(
    raw: bytes, name: str, *, now: datetime, max_bytes: int = 5_000_000
) -> FileIntake:
    """Tickets from the bytes of a ``.json`` or ``.csv`` file called ``name``."""
    result = FileIntake(path=Path(name), sha256=hashlib.sha256(raw).hexdigest())
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        result.refused = f"{name}: not a ticket file (expected .json or .csv)"
        return result
    if len(raw) > max_bytes:
        result.refused = f"{name}: {len(raw)} bytes, over the {max_bytes}-byte limit"
        return result
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        result.refused = f"{name}:{line}: not UTF-8 text"
        return result
    fallback = f"invalid-{result.sha256[:12]}"
    try:
        if suffix == ".json":
            records = _records_from_json(text, name)
            for n, record in enumerate(records, start=1):
                where = f"{name}#{n}"
                if not isinstance(record, dict):
                    record = {}
                    where += " (not an object)"
                result.tickets.append(
                    ticket_from_record(record, where=where, fallback_id=f"{fallback}-{n}", now=now)
                )
        else:
            reader = csv.DictReader(io.StringIO(text))
            missing = {"external_id", "kind"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{name}:1: CSV header lacks {sorted(missing)}")
            for row in reader:
                line = reader.line_num
                record = {k: v for k, v in row.items() if k is not None}
                if None in row:
                    record["_extra"] = row[None]
                result.tickets.append(
                    ticket_from_record(
                        record, where=f"{name}:{line}", fallback_id=f"{fallback}-{line}", now=now
                    )
                )
    except ValueError as exc:
        result.refused = str(exc)
        result.tickets = []
    except csv.Error as exc:
        line = reader.line_num if suffix == ".csv" else 0
        result.refused = f"{name}:{line}: not a readable CSV file ({exc})"
        result.tickets = []
    return result


def parse_ticket_file(path: Path, *, now: datetime, max_bytes: int = 5_000_000) -> FileIntake:
    """Tickets from a file; the size is checked before the file is read."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return FileIntake(path=path, refused=f"{path.name}: cannot read ({exc.strerror})")
    if size > max_bytes:
        return FileIntake(
            path=path, refused=f"{path.name}: {size} bytes, over the {max_bytes}-byte limit"
        )
    result = parse_ticket_bytes(path.read_bytes(), path.name, now=now, max_bytes=max_bytes)
    result.path = path
    return result

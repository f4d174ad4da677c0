"""Reading deletion tickets from files (JSON or CSV) dropped in the inbox or given to the CLI.

A file that cannot be read as tickets at all (a link, not a regular file, wrong type, too large,
not UTF-8 or not valid Unicode, broken JSON) is *refused* with a reason naming the file and line;
the rest of the inbox is unaffected. A row that can be read but is malformed still becomes a
ticket, carrying its problems, so that the ledger records it and rejects it with that reason:
nothing is dropped silently.

What goes into the ledger's permanent record is kept free of text copied from the input: files
are named by ``file_label`` (the name itself only when it is a short plain name, else a hash),
problems name fields and rules but never quote a value, a ``kind`` or ``legal_basis`` that is not
a known code is dropped, and an ``external_id`` must be a plain code (no ``@``, no spaces).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from unlearnrec.ledger.tickets import TicketIn
from unlearnrec.records.policy import TICKET_KINDS

FIELDS = ("external_id", "kind", "subject", "items", "legal_basis", "received_at")
SUFFIXES = (".json", ".csv")
MAX_PROBLEMS = 10  # per ticket; the rest are counted
MAX_PROBLEM_CHARS = 200
# A file name kept as it is in the ledger and logs: short, plain, no '@' (an e-mail address).
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
# A field name quoted in a problem: an identifier, nothing that could be a value.
_SAFE_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
# An external id: the DSAR system's code. Spaces, '@' and markup characters are not codes.
_EXTERNAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+-]{0,199}")
# A legal basis: an upper-case regime, optionally "-" and its article ("GDPR-17(1)(a)").
_LEGAL_BASIS = re.compile(r"[A-Z]{2,12}(-[A-Za-z0-9().]{1,27})?")


def file_label(name: str) -> str:
    """How the ledger, the audit trail and the logs name a file called ``name``: the name itself
    when it is short and plain (letters, digits, ``.``, ``_``, ``-``); otherwise ``file-`` and
    the first 12 hex digits of the SHA-256 of the name's bytes, with its ticket suffix. A name
    holding an e-mail address, a newline or 250 characters never lands verbatim."""
    if _SAFE_NAME.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    suffix = Path(name).suffix.lower()
    return f"file-{digest}{suffix if suffix in SUFFIXES else ''}"


@dataclass
class FileIntake:
    path: Path
    tickets: list[TicketIn] = field(default_factory=list)
    refused: str | None = None  # why the whole file was refused (names the file by its label)
    sha256: str = ""
    label: str = ""  # file_label(path.name): how the ledger names the file


def _parse_time(value: Any, now: datetime) -> tuple[datetime, str | None]:
    """ISO 8601 -> aware UTC. Missing -> ``now``; input without a zone is taken as UTC."""
    if value in (None, ""):
        return now, None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return now, "received_at is not an ISO 8601 time"
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
    unknown = set(record) - set(FIELDS)
    if unknown:
        problems.append(f"{where}: {_unknown_fields(unknown)}")
    external_id = _text(record.get("external_id"))
    if not external_id:
        problems.append(f"{where}: external_id is missing")
        external_id = fallback_id
    elif len(external_id) > 200:
        problems.append(f"{where}: external_id longer than 200 characters")
        external_id = fallback_id
    elif not _EXTERNAL_ID.fullmatch(external_id):
        problems.append(
            f"{where}: external_id is not a plain code (letters, digits and . _ : / + -)"
        )
        external_id = fallback_id
    kind = _text(record.get("kind"))
    if not kind:
        problems.append(f"{where}: kind is missing (one of {', '.join(TICKET_KINDS)})")
    elif kind not in TICKET_KINDS:
        problems.append(f"{where}: kind is not one of {', '.join(TICKET_KINDS)}")
        kind = ""  # not a code: it may be a shifted column holding a subject id
    legal_basis = _text(record.get("legal_basis"))
    if legal_basis and not _LEGAL_BASIS.fullmatch(legal_basis):
        problems.append(f"{where}: legal_basis is not a regime code such as GDPR-17(1)(a)")
        legal_basis = ""
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
        legal_basis=legal_basis,
        received_at=received_at,
        source=where,
        problems=_bounded(problems),
    )


def _unknown_fields(names: set[str]) -> str:
    """``unknown fields ['colour']``: identifier-like names only (up to 5), the rest counted."""
    shown = sorted(n for n in names if isinstance(n, str) and _SAFE_FIELD.fullmatch(n))[:5]
    hidden = len(names) - len(shown)
    return f"unknown fields {shown}" + (f" and {hidden} more not shown" if hidden else "")


def _bounded(problems: list[str]) -> tuple[str, ...]:
    kept = [
        p if len(p) <= MAX_PROBLEM_CHARS else p[: MAX_PROBLEM_CHARS - 1] + "…" for p in problems
    ]
    if len(kept) > MAX_PROBLEMS:
        kept = [*kept[: MAX_PROBLEMS - 1], f"and {len(kept) - MAX_PROBLEMS + 1} more problems"]
    return tuple(kept)


def _lone_surrogate(data: Any) -> bool:
    """Whether any string (key or value) in parsed JSON holds a lone surrogate (``"\\ud800"``
    parses, but can never be stored or hashed as UTF-8). Iterative: the nesting is not bounded."""
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return False


def _records_from_json(text: str, name: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise ValueError(f"{name}: JSON nested too deeply to be a ticket file") from None
    if _lone_surrogate(data):
        raise ValueError(
            f"{name}: not valid Unicode text (a lone surrogate escape such as \\ud800)"
        )
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
    """Tickets from the bytes of a ``.json`` or ``.csv`` file called ``name``. Never raises on
    bad input: whatever cannot be read refuses the file with a reason naming it."""
    label = file_label(name)
    result = FileIntake(path=Path(name), sha256=hashlib.sha256(raw).hexdigest(), label=label)
    try:
        _parse_into(result, raw, name, label, now=now, max_bytes=max_bytes)
    except Exception as exc:  # a last resort: one hostile file must not stop the inbox
        result.refused = f"{label}: could not be read as tickets ({type(exc).__name__})"
        result.tickets = []
    return result


def _parse_into(
    result: FileIntake, raw: bytes, name: str, label: str, *, now: datetime, max_bytes: int
) -> None:
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        result.refused = f"{label}: not a ticket file (expected .json or .csv)"
        return
    if len(raw) > max_bytes:
        result.refused = f"{label}: {len(raw)} bytes, over the {max_bytes}-byte limit"
        return
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        result.refused = f"{label}:{line}: not UTF-8 text"
        return
    fallback = f"invalid-{result.sha256[:12]}"
    try:
        if suffix == ".json":
            records = _records_from_json(text, label)
            for n, record in enumerate(records, start=1):
                where = f"{label}#{n}"
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
                raise ValueError(f"{label}:1: CSV header lacks {sorted(missing)}")
            for row in reader:
                line = reader.line_num
                record = {k: v for k, v in row.items() if k is not None}
                if None in row:
                    record["_extra"] = row[None]
                result.tickets.append(
                    ticket_from_record(
                        record, where=f"{label}:{line}", fallback_id=f"{fallback}-{line}", now=now
                    )
                )
    except ValueError as exc:
        result.refused = str(exc)
        result.tickets = []
    except csv.Error as exc:
        line = reader.line_num if suffix == ".csv" else 0
        result.refused = f"{label}:{line}: not a readable CSV file ({str(exc)[:80]})"
        result.tickets = []


_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)  # never through a link
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in after lstat must not block the run
    | getattr(os, "O_CLOEXEC", 0)
)


def read_regular_file(path: Path, max_bytes: int) -> tuple[bytes | None, str | None]:
    """(bytes, None) of ``path`` if it is a regular file (checked with ``lstat``, opened with
    ``O_NOFOLLOW``: a symbolic link is refused, never followed) of at most ``max_bytes``; else
    (None, reason naming the file). The read itself is bounded too: a file whose size says 0
    (procfs) is never read past ``max_bytes``."""
    label = file_label(path.name)
    try:
        st = os.lstat(path)
    except OSError as exc:
        return None, f"{label}: cannot read ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return None, f"{label}: a symbolic link (links are not followed)"
    if not stat.S_ISREG(st.st_mode):
        return None, f"{label}: not a regular file"
    if st.st_size > max_bytes:
        return None, f"{label}: {st.st_size} bytes, over the {max_bytes}-byte limit"
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        return None, f"{label}: cannot read ({exc.strerror})"
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
            st.st_dev,
            st.st_ino,
        ):
            return None, f"{label}: replaced while being opened (not read)"
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        return None, f"{label}: cannot read ({exc.strerror})"
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > max_bytes:
        return None, f"{label}: more than {max_bytes} bytes, over the {max_bytes}-byte limit"
    return raw, None


def parse_ticket_file(path: Path, *, now: datetime, max_bytes: int = 5_000_000) -> FileIntake:
    """Tickets from a regular file (see ``read_regular_file``); the size is checked before the
    file is read and the read is bounded."""
    raw, refused = read_regular_file(path, max_bytes)
    if raw is None:
        return FileIntake(path=path, refused=refused, label=file_label(path.name))
    result = parse_ticket_bytes(raw, path.name, now=now, max_bytes=max_bytes)
    result.path = path
    return result

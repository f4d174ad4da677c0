"""Inbox -> ledger. Each file is handled on its own: a file that cannot be processed, for any
reason (refused by intake, or failing while its tickets are recorded), is *quarantined*: moved to
``refused/`` with a ``.reason.txt`` beside it and an ``intake.refused`` audit event; the other
files are unaffected and the next run does not trip over it again.

Only entries of the inbox itself are read, each checked with ``lstat`` and opened without
following links (``unlearnrec.records.intake.read_regular_file``). Files are named by their
``file_label`` in the ledger, the audit trail and the logs, never by a name copied verbatim.
``processed/`` and ``refused/`` are private to the platform's user (0700, files 0600): the files
in them hold personal data.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from unlearnrec.compliance.platform import Platform
from unlearnrec.files import atomic_write_text
from unlearnrec.ledger import append_event, record_ticket, session_scope
from unlearnrec.records.intake import FileIntake, file_label, parse_ticket_file

log = logging.getLogger("unlearnrec.ingest")


@dataclass
class IngestSummary:
    files: int = 0
    created: int = 0
    resubmitted: int = 0
    rejected_at_intake: int = 0
    refused_files: list[tuple[str, str]] = field(default_factory=list)
    ticket_ids: list[int] = field(default_factory=list)

    def add(self, other: IngestSummary) -> None:
        self.files += other.files
        self.created += other.created
        self.resubmitted += other.resubmitted
        self.rejected_at_intake += other.rejected_at_intake
        self.refused_files += other.refused_files
        self.ticket_ids += other.ticket_ids


def log_safe(text: str) -> str:
    """``text`` for one log line: control characters (a newline forging a second line) and
    anything outside ASCII escaped."""
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")


def record_intake(platform: Platform, intake: FileIntake, *, actor: str) -> IngestSummary:
    """Record the tickets of one parsed file (one transaction), or its refusal."""
    summary = IngestSummary(files=1)
    label = intake.label or file_label(intake.path.name)
    with session_scope(platform.engine) as session:
        if intake.refused:
            summary.refused_files.append((label, intake.refused))
            append_event(
                session,
                actor=actor,
                action="intake.refused",
                entity="file",
                entity_id=label,
                data={"sha256": intake.sha256, "reason": intake.refused},
            )
            return summary
        for incoming in intake.tickets:
            ticket, created = record_ticket(
                session,
                incoming,
                policy=platform.policy,
                pseudonymise=platform.pseudonymise,
                actor=actor,
            )
            summary.ticket_ids.append(int(ticket.id))  # type: ignore[arg-type]
            if not created:
                summary.resubmitted += 1
            elif incoming.problems:
                summary.rejected_at_intake += 1
            else:
                summary.created += 1
    return summary


def _private_dir(folder: Path) -> Path:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask; an old folder is tightened
    return folder


def _move(path: Path, folder: Path, stamp: str) -> Path:
    """Move the inbox entry ``path`` (a link is moved as a link, never followed) into
    ``folder`` as ``<stamp>-<label>``: a bounded name, whatever the original one."""
    _private_dir(folder)
    base = f"{stamp}-{file_label(path.name)}"
    target, n = folder / base, 1
    while os.path.lexists(target):
        n += 1
        target = folder / f"{base}.{n}"
    os.rename(path, target)
    if stat.S_ISREG(os.lstat(target).st_mode):
        os.chmod(target, 0o600)
    return target


def _process(platform: Platform, path: Path, *, now: datetime) -> FileIntake:
    """Parse ``path`` and record its tickets; returns its intake, refused if anything failed."""
    label = file_label(path.name)
    try:
        intake = parse_ticket_file(path, now=now, max_bytes=platform.settings.max_ticket_file_bytes)
    except Exception as exc:  # parse_ticket_file refuses rather than raises; a last resort
        intake = FileIntake(path=path, label=label)
        intake.refused = f"{label}: could not be read ({type(exc).__name__})"
    return intake


def _ingest_one(
    platform: Platform, path: Path, *, now: datetime, actor: str, stamp: str
) -> IngestSummary:
    intake = _process(platform, path, now=now)
    label = intake.label or file_label(path.name)
    try:
        summary = record_intake(platform, intake, actor=actor)
    except Exception as exc:  # e.g. a value the database cannot store: the file is quarantined
        log.exception("recording %s failed", label)
        quarantined = FileIntake(path=path, sha256=intake.sha256, label=label)
        quarantined.refused = f"{label}: its tickets could not be recorded ({type(exc).__name__})"
        intake = quarantined
        summary = record_intake(platform, intake, actor=actor)
    try:
        if intake.refused:
            moved = _move(path, platform.settings.inbox / "refused", stamp)
            atomic_write_text(
                moved.with_name(moved.name + ".reason.txt"),
                f"{intake.refused}\nfile name: {path.name!a}\n",
                mode=0o600,
            )
            log.warning("refused %s: %s", label, log_safe(intake.refused.split(":", 1)[-1]).strip())
        else:
            _move(path, platform.settings.inbox / "processed", stamp)
            log.info(
                "ingested %s: %d new, %d resubmitted, %d rejected at intake",
                label,
                summary.created,
                summary.resubmitted,
                summary.rejected_at_intake,
            )
    except OSError as exc:
        # Recorded (or refused) but not moved: a rerun sees it again, which is harmless
        # (known external ids are not recorded twice), and it must not stop the other files.
        log.error("could not move %s out of the inbox: %s", label, log_safe(exc.strerror or ""))
    return summary


def ingest_inbox(platform: Platform, *, now: datetime, actor: str = "ingest") -> IngestSummary:
    """Ingest every file in the inbox; processed files go to ``processed/``, refused or failed
    ones to ``refused/`` (with the reason). Re-running is safe: known external ids are not
    duplicated. No file, however hostile, stops the files after it."""
    inbox = platform.settings.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    total = IngestSummary()
    stamp = now.strftime("%Y%m%dT%H%M%S")
    with os.scandir(inbox) as it:
        entries = sorted(
            (e for e in it if not e.name.startswith(".") and not e.is_dir(follow_symlinks=False)),
            key=lambda e: e.name,
        )
    for entry in entries:
        total.add(_ingest_one(platform, Path(entry.path), now=now, actor=actor, stamp=stamp))
    return total


def submit_file(platform: Platform, path: Path, *, now: datetime, actor: str) -> IngestSummary:
    """``unlearnrec tickets submit FILE``: record the tickets of one file (left in place); a file
    that cannot be processed is refused with a reason and an audit event, not raised."""
    intake = _process(platform, path, now=now)
    try:
        return record_intake(platform, intake, actor=actor)
    except Exception as exc:
        label = intake.label or file_label(path.name)
        refused = FileIntake(path=path, sha256=intake.sha256, label=label)
        refused.refused = f"{label}: its tickets could not be recorded ({type(exc).__name__})"
        return record_intake(platform, refused, actor=actor)

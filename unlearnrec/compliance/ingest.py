"""Inbox -> ledger. Each file is handled on its own: a refused file is moved to ``refused/`` with
a ``.reason.txt`` beside it and an audit event; the other files are unaffected."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from unlearnrec.compliance.platform import Platform
from unlearnrec.files import atomic_write_text
from unlearnrec.intake import FileIntake, parse_ticket_file
from unlearnrec.ledger import append_event, record_ticket, session_scope

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


def record_intake(platform: Platform, intake: FileIntake, *, actor: str) -> IngestSummary:
    """Record the tickets of one parsed file (one transaction), or its refusal."""
    summary = IngestSummary(files=1)
    with session_scope(platform.engine) as session:
        if intake.refused:
            summary.refused_files.append((intake.path.name, intake.refused))
            append_event(
                session,
                actor=actor,
                action="intake.refused",
                entity="file",
                entity_id=intake.path.name,
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


def _move(path: Path, folder: Path, stamp: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{stamp}-{path.name}"
    shutil.move(str(path), target)
    return target


def ingest_inbox(platform: Platform, *, now: datetime, actor: str = "ingest") -> IngestSummary:
    """Ingest every file in the inbox; processed files go to ``processed/``, refused ones to
    ``refused/`` (with the reason). Re-running is safe: known external ids are not duplicated."""
    inbox = platform.settings.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    total = IngestSummary()
    stamp = now.strftime("%Y%m%dT%H%M%S")
    for path in sorted(p for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")):
        intake = parse_ticket_file(path, now=now, max_bytes=platform.settings.max_ticket_file_bytes)
        summary = record_intake(platform, intake, actor=actor)
        if intake.refused:
            moved = _move(path, inbox / "refused", stamp)
            atomic_write_text(moved.with_name(moved.name + ".reason.txt"), intake.refused + "\n")
            log.warning("refused %s: %s", path.name, intake.refused.split(":", 1)[-1].strip())
        else:
            _move(path, inbox / "processed", stamp)
            log.info(
                "ingested %s: %d new, %d resubmitted, %d rejected at intake",
                path.name,
                summary.created,
                summary.resubmitted,
                summary.rejected_at_intake,
            )
        total.add(summary)
    return total


def submit_file(platform: Platform, path: Path, *, now: datetime, actor: str) -> IngestSummary:
    """``unlearnrec tickets submit FILE``: record the tickets of one file (left in place)."""
    intake = parse_ticket_file(path, now=now, max_bytes=platform.settings.max_ticket_file_bytes)
    return record_intake(platform, intake, actor=actor)

"""A sample inbox for the main job: valid tickets of every kind and some invalid ones, drawn
deterministically from the dataset's own ids (so they name real users and items)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from unlearnrec.data.splits import Splits
from unlearnrec.files import atomic_write_text


def write_sample_inbox(inbox: Path, files: Splits, *, now: datetime, seed: int = 7) -> list[Path]:
    """Write the sample ticket files into ``inbox``; returns their paths."""
    rng = np.random.default_rng(seed)
    pairs = files.fit
    users_with_edges = np.unique(pairs[:, 0])
    u = [str(files.user_ids[x]) for x in rng.choice(users_with_edges, size=3, replace=False)]
    some_user = int(rng.choice(users_with_edges))
    items_of = pairs[pairs[:, 0] == some_user, 1]
    chosen_items = [str(files.item_ids[i]) for i in rng.choice(items_of, size=3, replace=False)]
    item_counts = np.bincount(pairs[:, 1], minlength=files.num_items)
    takedown = str(files.item_ids[int(np.argsort(item_counts)[len(item_counts) // 2])])
    received = (now - timedelta(days=2)).isoformat(timespec="seconds")
    old = (now - timedelta(days=75)).isoformat(timespec="seconds")
    erasures = [
        {
            "external_id": "DSAR-1001",
            "kind": "erase_user",
            "subject": u[0],
            "legal_basis": "GDPR-17(1)(a)",
            "received_at": received,
        },
        {
            "external_id": "DSAR-1002",
            "kind": "erase_user",
            "subject": u[1],
            "legal_basis": "CCPA-1798.105",
            "received_at": received,
        },
        {
            "external_id": "DSAR-1003",
            "kind": "erase_interactions",
            "subject": str(files.user_ids[some_user]),
            "items": chosen_items,
            "legal_basis": "GDPR-17(1)(b)",
            "received_at": received,
        },
        # Invalid: a user the dataset does not know.
        {
            "external_id": "DSAR-1004",
            "kind": "erase_user",
            "subject": "no-such-user",
            "legal_basis": "GDPR-17(1)(a)",
            "received_at": received,
        },
        # Overdue: received 75 days ago under GDPR, its one-month deadline has passed; escalated
        # (flagged overdue) and still erased, never rejected for it.
        {
            "external_id": "DSAR-1005",
            "kind": "erase_user",
            "subject": u[2],
            "legal_basis": "GDPR-17(1)(a)",
            "received_at": old,
        },
        # Invalid: the same request as DSAR-1001 under another id.
        {
            "external_id": "DSAR-1006",
            "kind": "erase_user",
            "subject": u[0],
            "legal_basis": "GDPR-17(1)(a)",
            "received_at": received,
        },
        # Invalid: no kind.
        {"external_id": "DSAR-1007", "subject": u[2], "legal_basis": "GDPR-17(1)(a)"},
    ]
    out = []
    path = inbox / "dsar-export-2026-11.json"
    atomic_write_text(path, json.dumps({"tickets": erasures}, indent=2) + "\n")
    out.append(path)
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf,
        fieldnames=["external_id", "kind", "subject", "items", "legal_basis", "received_at"],
        lineterminator="\n",
    )
    writer.writeheader()
    writer.writerow(
        {
            "external_id": "LIC-2001",
            "kind": "take_down_item",
            "subject": "",
            "items": takedown,
            "legal_basis": "GDPR-17(1)(d)",
            "received_at": received,
        }
    )
    # The same external id again (a resubmission): one ticket.
    writer.writerow(
        {
            "external_id": "DSAR-1001",
            "kind": "erase_user",
            "subject": u[0],
            "items": "",
            "legal_basis": "GDPR-17(1)(a)",
            "received_at": received,
        }
    )
    path = inbox / "licence-takedowns.csv"
    atomic_write_text(path, buf.getvalue())
    out.append(path)
    path = inbox / "meeting-notes.txt"  # not a ticket file: refused, the rest unaffected
    atomic_write_text(path, "notes, not tickets\n")
    out.append(path)
    path = inbox / "broken-export.json"  # broken JSON: refused with file and line
    atomic_write_text(path, '{"tickets": [\n  {"external_id": "X-1",}\n]}\n')
    out.append(path)
    return out

"""How each table is laid out so it fits a laptop's screen (1280 px wide and up, sidebar open:
a full-width table gets about 820 px): short headers, fixed widths for the columns whose text
can run long, and the long or secondary columns hidden. A hidden column stays in the table's
data (the toolbar's "Show/hide columns" brings it back, CSV download keeps it) and is shown in
full in the detail view below each table; the urgent ones (deadline, time left, status, verdict,
speed-up) are always in view. ``tests/dashboard/e2e.py`` measures every table in a browser.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import queries

cc = st.column_config
HIDDEN = None  # Streamlit: a column configured as None is hidden (and can be shown again)
# Hashes are shown by their first digits in the tables; the full value is in a hidden column.
SHORT_HASH = 8

# Widths fixed where the text comes from outside (ids, legal bases, lists), so a long value is
# clipped in its cell (whole in the detail) instead of pushing the table past its frame.
EXTERNAL_ID = cc.TextColumn("external id", width=100)
LEGAL_BASIS = cc.TextColumn("legal basis", width=105)
FLAG = cc.TextColumn("flag", width=130, help="OVERDUE, ESCALATED or both (also shown by colour)")
RUN = cc.NumberColumn("run", width=45, format="%d")
DEADLINE = cc.TextColumn("deadline (UTC)", width=125)
TIME_LEFT = cc.TextColumn("time left", width=132, help="countdown to the legal deadline")

DEADLINES: dict[str, Any] = {
    "external id": EXTERNAL_ID,
    "flag": FLAG,
    "time left": TIME_LEFT,
    "deadline": DEADLINE,
    "legal basis": LEGAL_BASIS,
}

TICKETS: dict[str, Any] = {
    **DEADLINES,
    # In the ticket detail below (and one click away in the column menu).
    "subject (pseudonym)": HIDDEN,
    "items": HIDDEN,
    "received": HIDDEN,
    "run": HIDDEN,
    "certificate": HIDDEN,
}

LAST_RUNS: dict[str, Any] = {
    "run": RUN,
    "tickets": cc.TextColumn("tickets", width=150),
    "purge check": cc.TextColumn(
        "purge check", help="Great Expectations: expectations met / evaluated (run detail: which)"
    ),
    "unlearning": cc.TextColumn("unlearning", help="wall-clock seconds of the unlearning step"),
    "speed-up vs retrain": cc.TextColumn(
        "speed-up", help="retrain seconds / unlearning seconds (— where the ledger has no retrain)"
    ),
    "finished": cc.TextColumn("finished (UTC)"),
    # In the run detail on Models and data.
    "stage": HIDDEN,
    "removed interactions": HIDDEN,
    "tier": HIDDEN,
    "fallback": HIDDEN,
}

# A detail's field/value list: the value column as wide as a 1280 px screen allows, so a
# sha256 or a result path shows whole rather than clipped at the column's automatic width.
FACTS: dict[str, Any] = {"field": cc.TextColumn(width=210), "value": cc.TextColumn(width=600)}

TIMELINE: dict[str, Any] = {
    "position": cc.NumberColumn("#", width=45, format="%d", help="position in the audit chain"),
    "at": cc.TextColumn("at (UTC)", width=125),
    "details": cc.TextColumn("details", width=300, help="in full, with hashes, below the table"),
    "hash": HIDDEN,
}

CERTIFICATES: dict[str, Any] = {
    "check": cc.TextColumn("check", width=60, help="live signature and ledger check"),
    "tickets": cc.TextColumn("tickets", width=120),
    "run": RUN,
    "issued": cc.TextColumn("issued (UTC)"),
    "audit position": cc.NumberColumn("audit #", format="%d"),
}

REVOKED: dict[str, Any] = {
    "revoked": cc.DatetimeColumn("revoked (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"),
    "file sha256": cc.TextColumn("file sha256", width=135, help="first 16 hex digits"),
    "reason": cc.TextColumn("reason", width=260, help="in full below the table"),
    "audit position": cc.NumberColumn("audit #", format="%d"),
}

TIMING: dict[str, Any] = {
    "run": RUN,
    "retrain measured by": cc.TextColumn("retrain measured by", width=220),
}

METRICS: dict[str, Any] = {
    "run": RUN,
    "unlearned": cc.NumberColumn("unlearned", format="%.4f"),
    "reference": cc.NumberColumn("retrained reference", format="%.4f"),
}

_VERSION_COMMON: dict[str, Any] = {
    "id": cc.NumberColumn("id", width=40, format="%d"),
    "parent_id": cc.NumberColumn("parent", format="%d"),
    "run_id": cc.NumberColumn("run", format="%d"),
    "created_at": cc.TextColumn("created (UTC)"),
    "dvc": cc.TextColumn("dvc md5", help="first digits; the full hash in the hidden dvc_md5"),
    "dvc_md5": HIDDEN,
}

DATASET_VERSIONS: dict[str, Any] = {
    **_VERSION_COMMON,
    "content": cc.TextColumn("content hash", help="first digits; in full in content_hash"),
    "content_hash": HIDDEN,
    "holds_erased_data": cc.CheckboxColumn("holds erased"),
    "purged": cc.CheckboxColumn("purged"),
}

MODEL_VERSIONS: dict[str, Any] = {
    **_VERSION_COMMON,
    "sha": cc.TextColumn("sha256", help="first digits; in full in the hidden sha256 column"),
    "sha256": HIDDEN,
    "dataset_version_id": cc.NumberColumn("trained on dataset", format="%d"),
    "metrics": HIDDEN,  # JSON: in full under the table
}


def short(value: Any) -> str:
    """The first digits of a hash, for a table cell (a dash when there is none)."""
    if not value or value == queries.DASH:
        return queries.DASH
    return f"{str(value)[:SHORT_HASH]}…"

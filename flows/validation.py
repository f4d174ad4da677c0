"""Great Expectations suites for the compliance workflow: erasure-ticket batches and purges.

Two suites, each registered in the platform's GX project (``flows/gx_store.py``: a file-backed
context under ``var/gx/``) behind a ValidationDefinition and a Checkpoint whose
``UpdateDataDocsAction`` builds the data docs; every run's validation result is kept there. Both
are answered with our own :class:`ValidationResult`, which names the stored result and its
data-docs page:

* :func:`validate_ticket_batch` checks a batch of erasure tickets before anything is queued. Every
  check has a short stable name (the keys of :data:`REASONS`, kept in each expectation's
  ``meta.name``) that a compliance officer sees as the rejection reason; per-row failures come
  from GX's ``unexpected_index_list``.
* :func:`validate_purge` checks interaction data after a purge: exactly the removed pairs are gone
  and nothing else changed.

Membership in the dataset (known users and items, the items a subject interacted with, the pairs
before and after a purge) is checked by custom expectations (``flows/gx_expectations.py``) that
read the reference data by name for the run: GX's ``value_set`` would be copied, hashed and
rendered per expectation, which is unusably slow for large datasets (a one-million-id
``value_set`` took over three minutes in GX 1.24). Values that change per run (now, the expected
row count after a purge) are suite parameters. No subject reaches GX: the ``subject`` column it
validates holds each ticket's position in the batch, read through the registered subjects.

Importing GX costs seconds, so it is imported lazily and each store is built once per process
(:func:`warm_up` does it ahead of time). Validations are serialised with a lock: the pandas
execution engine behind the data source holds one active batch at a time, and the reference
data are registered for one run at a time.
"""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TICKET_SUITE = "ticket_batch"
PURGE_SUITE = "purge"

TICKET_KINDS = ("erase_user", "erase_interactions", "take_down_item")
USER_KINDS = ("erase_user", "erase_interactions")  # kinds whose subject must be a known user
ITEM_KINDS = ("erase_interactions", "take_down_item")  # kinds whose items must be known
ITEM_SEPARATOR = ";"

# GDPR Art. 17(1) grounds (a)-(f) and the CCPA right to delete.
LEGAL_BASES = (*(f"GDPR-17(1)({ground})" for ground in "abcdef"), "CCPA-1798.105")

REQUIRED_COLUMNS = (
    "external_id",
    "kind",
    "subject",
    "items",
    "legal_basis",
    "received_at",
    "deadline_at",
)

# Check names in reporting order.
TICKET_CHECKS = (
    "schema",
    "external_id_present",
    "external_id_unique_in_batch",
    "kind_is_known",
    "legal_basis_is_known",
    "subject_is_known_user",
    "items_are_known",
    "items_were_interacted",
    "received_not_in_future",
    "deadline_not_passed",
)
PURGE_CHECKS = (
    "removed_pairs_were_present",
    "removed_pairs_gone",
    "nothing_else_changed",
    "counts_reconcile",
    "no_duplicate_pairs",
)

# Checks whose failure escalates the ticket instead of rejecting it: a missed deadline does not
# end the duty to erase (the ledger flags it overdue; see ``ledger.flag_overdue``).
ESCALATING_CHECKS = frozenset({"deadline_not_passed"})

REASONS: dict[str, str] = {
    "schema": "the ticket batch lacks a required column (" + ", ".join(REQUIRED_COLUMNS) + ")",
    "external_id_present": "the ticket has no external id",
    "external_id_unique_in_batch": "the ticket's external id appears more than once in the batch",
    "kind_is_known": "the request kind is not one of " + ", ".join(TICKET_KINDS),
    "legal_basis_is_known": "the legal basis is not one of " + ", ".join(LEGAL_BASES),
    "subject_is_known_user": "the subject is not a known user of the dataset",
    "items_are_known": "an item is not a known item of the dataset, or the number of items does "
    "not fit the request kind (take_down_item needs exactly one, erase_interactions at least one)",
    "items_were_interacted": "an item named is not one the subject ever interacted with: there "
    "is no interaction of theirs with it to erase (check the item ids)",
    "received_not_in_future": "the received time is missing or lies in the future",
    "deadline_not_passed": "the deadline is missing or has already passed",
    "removed_pairs_were_present": "a pair to remove was not in the data before the purge",
    "removed_pairs_gone": "a removed pair is still present after the purge",
    "nothing_else_changed": "the purge dropped or added pairs that were not to be removed",
    "counts_reconcile": "the number of interactions after the purge does not equal the number "
    "before minus the removed ones",
    "no_duplicate_pairs": "the data after the purge holds a duplicated (user, item) pair",
}

_COUNT_KEYS = {
    "evaluated_expectations": "evaluated",
    "successful_expectations": "successful",
    "unsuccessful_expectations": "unsuccessful",
}
# Ticket batches: every row's failures are needed (COMPLETE gives the full unexpected_index_list).
# Purges: counts only, no values (pair keys) written to the results store or the data docs.
TICKET_RESULT_FORMAT = {"result_format": "COMPLETE"}
PURGE_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of one suite: which named checks failed, and (ticket batches) on which rows."""

    suite: str  # "ticket_batch" or "purge"
    success: bool
    failed: tuple[str, ...]  # names of the failed checks, in the suite's reporting order
    row_failures: dict[int, tuple[str, ...]]  # ticket batches: row index label -> failed names
    statistics: dict[str, int]  # evaluated / successful / unsuccessful GX expectation counts
    # The stored GX validation result: <suite>/<run name>/<run time>/<batch id> under
    # gx/uncommitted/validations/ (in memory only without a state folder).
    result_id: str = ""
    # Its data-docs page, relative to the state folder given (None without one).
    data_docs: str | None = None

    def record(self) -> dict[str, Any]:
        """What the ledger keeps of a run's check: names and counts, no data."""
        return {
            "suite": self.suite,
            "success": self.success,
            "failed": list(self.failed),
            "statistics": dict(self.statistics),
            "result_id": self.result_id,
            "data_docs": self.data_docs,
        }


def explain(result: ValidationResult, row: int | None = None) -> list[str]:
    """Human sentences for the failures of ``result`` (of one row when ``row`` is given)."""
    names = result.failed if row is None else result.row_failures.get(row, ())
    return [REASONS.get(name, name) for name in names]


def warm_up(root: Path | None = None) -> None:
    """Import GX and build the store of ``root`` (the state folder; None: ephemeral) now,
    instead of on the first validation."""
    _store(root)


# ---------------------------------------------------------------- ticket batches


def validate_ticket_batch(
    tickets: pd.DataFrame,
    *,
    known_users: set[str],
    known_items: set[str],
    now: datetime,
    interactions: Mapping[str, set[str]] | None = None,
    root: Path | None = None,
    run_name: str | None = None,
) -> ValidationResult:
    """Validate a batch of erasure tickets (one row per ticket) through the ticket-batch
    checkpoint.

    ``interactions`` maps a subject to the items they interacted with (at least for the subjects
    of the batch's ``erase_interactions`` tickets): such a ticket naming a known item the subject
    never interacted with fails ``items_were_interacted``. Without it the check passes.

    ``root``: the state folder whose GX project keeps the result and data docs (None: an
    in-memory context, nothing kept); ``run_name`` names the run there (default: the suite).

    Rows are reported by their index label in ``tickets``. A batch that lacks a required column
    fails as a whole: every row gets ``"schema"`` and no other check is reported. An empty batch
    passes.
    """
    labels = list(tickets.index)
    frame, subjects = _ticket_frame(tickets)
    from flows.gx_expectations import lookups

    store = _store(root)
    with (
        _LOCK,
        lookups(
            subjects=subjects,
            users=_as_set(known_users),
            items=_as_set(known_items),
            interactions=interactions,
        ),
    ):
        checked = store.run(
            TICKET_SUITE, frame, parameters={"now": _as_utc(now)}, run_name=run_name
        )
    outcomes = _outcomes(checked.result)
    statistics = _counts(checked.result.statistics)
    kept = {"result_id": checked.result_id, "data_docs": checked.data_docs}
    if any(o.name == "schema" and not o.success for o in outcomes):
        return ValidationResult(
            suite=TICKET_SUITE,
            success=False,
            failed=("schema",),
            row_failures={label: ("schema",) for label in labels},
            statistics=statistics,
            **kept,
        )
    per_row: dict[int, set[str]] = {}
    for outcome in outcomes:
        if outcome.success:
            continue
        # A check that raised inside GX could not clear any row: fail closed on all of them.
        positions = range(len(labels)) if outcome.indices is None else outcome.indices
        for position in positions:
            per_row.setdefault(labels[position], set()).add(outcome.name)
    return ValidationResult(
        suite=TICKET_SUITE,
        success=bool(checked.result.success),
        failed=_failed(outcomes, TICKET_CHECKS),
        row_failures={
            label: tuple(name for name in TICKET_CHECKS if name in per_row[label])
            for label in dict.fromkeys(labels)  # batch order, each label once
            if label in per_row
        },
        statistics=statistics,
        **kept,
    )


def _ticket_suite(gx: Any) -> list[tuple[str, Any]]:
    expect = gx.expectations
    from great_expectations.expectations.row_conditions import Column

    from flows import gx_expectations as custom

    now = {"$PARAMETER": "now"}
    kind = Column("kind")
    return [
        *(("schema", expect.ExpectColumnToExist(column=c)) for c in REQUIRED_COLUMNS),
        ("external_id_present", expect.ExpectColumnValuesToNotBeNull(column="external_id")),
        ("external_id_unique_in_batch", expect.ExpectColumnValuesToBeUnique(column="external_id")),
        (
            "kind_is_known",
            expect.ExpectColumnValuesToBeInSet(column="kind", value_set=list(TICKET_KINDS)),
        ),
        (
            "legal_basis_is_known",
            expect.ExpectColumnValuesToBeInSet(column="legal_basis", value_set=list(LEGAL_BASES)),
        ),
        (
            "subject_is_known_user",
            custom.ExpectColumnValuesToBeInNamedSet(
                column="subject",
                set_name="users",
                through="subjects",
                row_condition=kind.is_in(USER_KINDS),
            ),
        ),
        (  # every kind that names items names at least one, each known ...
            "items_are_known",
            custom.ExpectColumnItemListsToBeInNamedSet(
                column="items",
                set_name="items",
                separator=ITEM_SEPARATOR,
                min_items=1,
                row_condition=kind.is_in(ITEM_KINDS),
            ),
        ),
        (  # ... and a take-down names exactly one
            "items_are_known",
            custom.ExpectColumnItemListsToBeInNamedSet(
                column="items",
                set_name="items",
                separator=ITEM_SEPARATOR,
                min_items=1,
                max_items=1,
                row_condition=kind == "take_down_item",
            ),
        ),
        (
            "items_were_interacted",
            custom.ExpectColumnPairItemsToBeInteractedBySubject(
                column_A="subject",
                column_B="items",
                subjects="subjects",
                users="users",
                items="items",
                interactions="interactions",
                separator=ITEM_SEPARATOR,
                row_condition=kind == "erase_interactions",
            ),
        ),
        ("received_not_in_future", expect.ExpectColumnValuesToNotBeNull(column="received_at")),
        (
            "received_not_in_future",
            expect.ExpectColumnValuesToBeBetween(column="received_at", max_value=now),
        ),
        ("deadline_not_passed", expect.ExpectColumnValuesToNotBeNull(column="deadline_at")),
        (
            "deadline_not_passed",
            expect.ExpectColumnValuesToBeBetween(column="deadline_at", min_value=now),
        ),
    ]


def _ticket_frame(tickets: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The normalised frame GX validates, and the batch's subjects by position.

    Positional index; text columns without nulls (GX's set checks skip nulls); UTC datetimes;
    ``subject`` holds the row's position (the subject is read through the returned list, so it
    never enters GX's results). Required columns the batch lacks stay absent (the schema check
    reports them)."""
    n = len(tickets)
    columns: dict[str, Any] = {}
    subjects = _text(tickets["subject"]) if "subject" in tickets else [""] * n
    if "external_id" in tickets:
        stripped = [value.strip() for value in _text(tickets["external_id"])]
        columns["external_id"] = pd.Series([value or None for value in stripped], dtype=object)
    for name in ("kind", "legal_basis", "items"):
        if name in tickets:
            columns[name] = pd.Series(_text(tickets[name]), dtype=object)
    if "subject" in tickets:
        columns["subject"] = pd.Series(np.arange(n, dtype=np.int64))
    for name in ("received_at", "deadline_at"):
        if name in tickets:
            columns[name] = _utc_times(tickets[name])
    return pd.DataFrame(columns, index=pd.RangeIndex(n)), subjects


def _as_set(ids: Iterable[str]) -> set[str] | frozenset[str]:
    return ids if isinstance(ids, set | frozenset) else set(ids)


def _text(column: pd.Series) -> list[str]:
    return ["" if _is_missing(value) else str(value) for value in column.tolist()]


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # list-likes: not a missing scalar
        return False


def _utc_times(column: pd.Series) -> pd.Series:
    """UTC datetimes (naive values taken as UTC); unparseable values become NaT."""
    times = pd.to_datetime(column, utc=True, errors="coerce")
    return pd.Series(times.to_numpy(), dtype=times.dtype)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# ---------------------------------------------------------------- purges


def validate_purge(
    before: pd.DataFrame,
    after: pd.DataFrame,
    removed: pd.DataFrame,
    *,
    root: Path | None = None,
    run_name: str | None = None,
) -> ValidationResult:
    """Validate interaction data after a purge through the purge checkpoint.

    ``before``, ``after`` and ``removed`` have int columns ``user`` and ``item``. The three frames
    are stacked into one, each row tagged with its ``frame`` and its (user, item) pair coded as
    one int64 ``pair`` key; the checks are GX expectations on that frame, restricted to the
    relevant rows with row conditions, reading each frame's set of pairs by name. The expected
    size of ``after`` is ``len(before)`` minus the rows of ``before`` whose pair is removed (the
    number of removed pairs that were present, when ``before`` has no duplicates).

    ``root`` and ``run_name``: as for :func:`validate_ticket_batch`.
    """
    frames = {"before": before, "after": after, "removed": removed}
    users, items, roles = [], [], []
    for role, data in frames.items():
        missing = [c for c in ("user", "item") if c not in data.columns]
        if missing:
            raise ValueError(f"validate_purge: {role!r} lacks column(s) {missing}")
        users.append(data["user"].to_numpy(dtype="int64"))
        items.append(data["item"].to_numpy(dtype="int64"))
        roles.append(np.full(len(data), role, dtype=object))
    # One int64 key per (user, item) pair: dense codes of both ids, combined.
    user_codes, _ = pd.factorize(np.concatenate(users))
    item_codes, item_ids = pd.factorize(np.concatenate(items))
    keys = user_codes.astype("int64") * max(len(item_ids), 1) + item_codes
    role = np.concatenate(roles)
    pairs = {name: np.unique(keys[role == name]) for name in frames}
    expected_after_rows = len(before) - int(np.isin(keys[role == "before"], pairs["removed"]).sum())
    stacked = pd.DataFrame({"frame": role, "pair": keys})

    from flows.gx_expectations import lookups

    store = _store(root)
    with (
        _LOCK,
        lookups(
            pairs_before=pairs["before"],
            pairs_after=pairs["after"],
            pairs_after_or_removed=np.union1d(pairs["after"], pairs["removed"]),
        ),
    ):
        checked = store.run(
            PURGE_SUITE,
            stacked,
            parameters={"expected_after_rows": expected_after_rows},
            run_name=run_name,
        )
    return ValidationResult(
        suite=PURGE_SUITE,
        success=bool(checked.result.success),
        failed=_failed(_outcomes(checked.result), PURGE_CHECKS),
        row_failures={},
        statistics=_counts(checked.result.statistics),
        result_id=checked.result_id,
        data_docs=checked.data_docs,
    )


def _purge_suite(gx: Any) -> list[tuple[str, Any]]:
    expect = gx.expectations
    from great_expectations.expectations.row_conditions import Column

    from flows import gx_expectations as custom

    frame = Column("frame")
    return [
        (
            "removed_pairs_were_present",
            custom.ExpectColumnValuesToBeInNamedSet(
                column="pair", set_name="pairs_before", row_condition=frame == "removed"
            ),
        ),
        (
            "removed_pairs_gone",
            custom.ExpectColumnValuesToNotBeInNamedSet(
                column="pair", set_name="pairs_after", row_condition=frame == "removed"
            ),
        ),
        (  # every pair of `before` is kept or removed ...
            "nothing_else_changed",
            custom.ExpectColumnValuesToBeInNamedSet(
                column="pair", set_name="pairs_after_or_removed", row_condition=frame == "before"
            ),
        ),
        (  # ... and nothing appears that was not there before
            "nothing_else_changed",
            custom.ExpectColumnValuesToBeInNamedSet(
                column="pair", set_name="pairs_before", row_condition=frame == "after"
            ),
        ),
        (
            "counts_reconcile",
            expect.ExpectTableRowCountToEqual(
                value={"$PARAMETER": "expected_after_rows"}, row_condition=frame == "after"
            ),
        ),
        (
            "no_duplicate_pairs",
            expect.ExpectColumnValuesToBeUnique(column="pair", row_condition=frame == "after"),
        ),
    ]


# ---------------------------------------------------------------- GX plumbing


@dataclass(frozen=True)
class _Outcome:
    name: str
    success: bool
    indices: list[int] | None  # unexpected row positions; None: not row-level, or it raised


_LOCK = threading.RLock()


def _store(root: Path | None):
    """The GX store of ``root`` with both suites, built once per process (GX imported here)."""
    with _LOCK:
        import great_expectations as gx

        from flows.gx_store import SuiteSpec, open_store

        def suites() -> list[SuiteSpec]:
            return [
                SuiteSpec(TICKET_SUITE, _described(_ticket_suite(gx)), TICKET_RESULT_FORMAT),
                SuiteSpec(PURGE_SUITE, _described(_purge_suite(gx)), PURGE_RESULT_FORMAT),
            ]

        return open_store(gx, root, suites)


def _described(checks: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Each expectation described by its check's reason (what the data docs show)."""
    for name, expectation in checks:
        expectation.description = f"{name}: fails when {REASONS[name]}"
    return checks


def _outcomes(result: Any) -> list[_Outcome]:
    outcomes = []
    for item in result.results:
        # Absent when the expectation is not row-level, or when it raised inside GX (whose
        # exception_info takes several shapes, so its presence is the test).
        indices = (item.result or {}).get("unexpected_index_list")
        outcomes.append(_Outcome(item.expectation_config.meta["name"], item.success, indices))
    return outcomes


def _failed(outcomes: list[_Outcome], order: tuple[str, ...]) -> tuple[str, ...]:
    names = {outcome.name for outcome in outcomes if not outcome.success}
    return tuple(name for name in order if name in names)


def _counts(statistics: Mapping[str, Any]) -> dict[str, int]:
    return {short: int(statistics.get(key, 0)) for key, short in _COUNT_KEYS.items()}

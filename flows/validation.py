"""Great Expectations suites for the compliance workflow: erasure-ticket batches and purges.

Two suites, both run through GX 1.x (an ephemeral data context, a pandas data source, a
whole-dataframe batch definition) and both answered with our own :class:`ValidationResult`:

* :func:`validate_ticket_batch` checks a batch of erasure tickets before anything is queued. Every
  check has a short stable name (the keys of :data:`REASONS`) that a compliance officer sees as the
  rejection reason; per-row failures come from GX's ``unexpected_index_list``.
* :func:`validate_purge` checks interaction data after a purge: exactly the removed pairs are gone
  and nothing else changed.

Set membership against the dataset (known users / items) is precomputed into boolean helper columns
with pandas and then *expected* to be true by GX: a ``value_set`` with the dataset's ids would be
copied, hashed and rendered by GX per expectation, which is unusably slow for large datasets
(a one-million-id ``value_set`` took over three minutes in GX 1.24).

Importing GX costs seconds, so it is imported lazily and the context is built once per process
(:func:`warm_up` does it ahead of time). Validations are serialised with a lock: the pandas
execution engine behind the cached data source holds one active batch at a time.
"""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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

_SUBJECT_KNOWN = "_subject_known"
_ITEMS_KNOWN = "_items_known"
_ITEMS_INTERACTED = "_items_interacted"
_COUNT_KEYS = {
    "evaluated_expectations": "evaluated",
    "successful_expectations": "successful",
    "unsuccessful_expectations": "unsuccessful",
}


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of one suite: which named checks failed, and (ticket batches) on which rows."""

    suite: str  # "ticket_batch" or "purge"
    success: bool
    failed: tuple[str, ...]  # names of the failed checks, in the suite's reporting order
    row_failures: dict[int, tuple[str, ...]]  # ticket batches: row index label -> failed names
    statistics: dict[str, int]  # evaluated / successful / unsuccessful GX expectation counts


def explain(result: ValidationResult, row: int | None = None) -> list[str]:
    """Human sentences for the failures of ``result`` (of one row when ``row`` is given)."""
    names = result.failed if row is None else result.row_failures.get(row, ())
    return [REASONS.get(name, name) for name in names]


def warm_up() -> None:
    """Import GX and build the cached context now, instead of on the first validation."""
    _gx()


# ---------------------------------------------------------------- ticket batches


def validate_ticket_batch(
    tickets: pd.DataFrame,
    *,
    known_users: set[str],
    known_items: set[str],
    now: datetime,
    interactions: Mapping[str, set[str]] | None = None,
) -> ValidationResult:
    """Validate a batch of erasure tickets (one row per ticket) with a GX suite.

    ``interactions`` maps a subject to the items they interacted with (at least for the subjects
    of the batch's ``erase_interactions`` tickets): such a ticket naming a known item the subject
    never interacted with fails ``items_were_interacted``. Without it the check passes.

    Rows are reported by their index label in ``tickets``. A batch that lacks a required column
    fails as a whole: every row gets ``"schema"`` and no other check runs. An empty batch passes.
    """
    gx = _gx().module
    expect = gx.expectations
    labels = list(tickets.index)

    schema = [("schema", expect.ExpectColumnToExist(column=c)) for c in REQUIRED_COLUMNS]
    # Only the columns matter to the schema check, so GX gets the batch without its rows.
    schema_run = _run(f"{TICKET_SUITE}.schema", tickets.head(0), schema, "BASIC")
    if not schema_run.success:
        return ValidationResult(
            suite=TICKET_SUITE,
            success=False,
            failed=("schema",),
            row_failures={label: ("schema",) for label in labels},
            statistics=schema_run.statistics,
        )

    frame = _ticket_frame(tickets, known_users, known_items, interactions)
    now_utc = _as_utc(now)
    from great_expectations.expectations.row_conditions import Column

    checks = [
        ("external_id_present", expect.ExpectColumnValuesToNotBeNull(column="external_id")),
        ("external_id_unique_in_batch", expect.ExpectColumnValuesToBeUnique(column="external_id")),
        (
            "kind_is_known",
            expect.ExpectColumnValuesToBeInSet(column="kind", value_set=TICKET_KINDS),
        ),
        (
            "legal_basis_is_known",
            expect.ExpectColumnValuesToBeInSet(column="legal_basis", value_set=LEGAL_BASES),
        ),
        (
            "subject_is_known_user",
            expect.ExpectColumnValuesToBeInSet(
                column=_SUBJECT_KNOWN,
                value_set=[True],
                row_condition=Column("kind").is_in(USER_KINDS),
            ),
        ),
        (
            "items_are_known",
            expect.ExpectColumnValuesToBeInSet(
                column=_ITEMS_KNOWN,
                value_set=[True],
                row_condition=Column("kind").is_in(ITEM_KINDS),
            ),
        ),
        (
            "items_were_interacted",
            expect.ExpectColumnValuesToBeInSet(
                column=_ITEMS_INTERACTED,
                value_set=[True],
                row_condition=Column("kind") == "erase_interactions",
            ),
        ),
        ("received_not_in_future", expect.ExpectColumnValuesToNotBeNull(column="received_at")),
        (
            "received_not_in_future",
            expect.ExpectColumnValuesToBeBetween(column="received_at", max_value=now_utc),
        ),
        ("deadline_not_passed", expect.ExpectColumnValuesToNotBeNull(column="deadline_at")),
        (
            "deadline_not_passed",
            expect.ExpectColumnValuesToBeBetween(column="deadline_at", min_value=now_utc),
        ),
    ]
    run = _run(TICKET_SUITE, frame, checks, "COMPLETE")

    per_row: dict[int, set[str]] = {}
    for outcome in run.outcomes:
        if outcome.success:
            continue
        # A check that raised inside GX could not clear any row: fail closed on all of them.
        positions = range(len(labels)) if outcome.indices is None else outcome.indices
        for position in positions:
            per_row.setdefault(labels[position], set()).add(outcome.name)
    return ValidationResult(
        suite=TICKET_SUITE,
        success=run.success,
        failed=run.failed(TICKET_CHECKS),
        row_failures={
            label: tuple(name for name in TICKET_CHECKS if name in per_row[label])
            for label in dict.fromkeys(labels)  # batch order, each label once
            if label in per_row
        },
        statistics=_add_counts(schema_run.statistics, run.statistics),
    )


def _ticket_frame(
    tickets: pd.DataFrame,
    known_users: Iterable[str],
    known_items: Iterable[str],
    interactions: Mapping[str, set[str]] | None = None,
) -> pd.DataFrame:
    """The normalised frame GX validates: positional index, text columns without nulls (GX's
    set checks skip nulls), UTC datetimes, and the two dataset-membership helper columns."""
    external_id = [value.strip() for value in _text(tickets["external_id"])]
    kind = _text(tickets["kind"])
    subject = _text(tickets["subject"])
    items = [
        [part.strip() for part in value.split(ITEM_SEPARATOR) if part.strip()]
        for value in _text(tickets["items"])
    ]
    users = known_users if isinstance(known_users, set | frozenset) else set(known_users)
    item_set = known_items if isinstance(known_items, set | frozenset) else set(known_items)
    items_known = [
        bool(parts)
        and all(item in item_set for item in parts)
        and (k != "take_down_item" or len(parts) == 1)
        for k, parts in zip(kind, items, strict=True)
    ]
    # Only known items of known subjects are checked here (the other checks report the rest).
    items_interacted = [
        interactions is None
        or subj not in users
        or all(item in interactions.get(subj, ()) for item in parts if item in item_set)
        for subj, parts in zip(subject, items, strict=True)
    ]
    return pd.DataFrame(
        {
            "external_id": pd.Series([value or None for value in external_id], dtype=object),
            "kind": kind,
            "legal_basis": _text(tickets["legal_basis"]),
            "subject": subject,
            _SUBJECT_KNOWN: pd.Series([value in users for value in subject], dtype=bool),
            _ITEMS_KNOWN: pd.Series(items_known, dtype=bool),
            _ITEMS_INTERACTED: pd.Series(items_interacted, dtype=bool),
            "received_at": _utc_times(tickets["received_at"]),
            "deadline_at": _utc_times(tickets["deadline_at"]),
        },
        index=pd.RangeIndex(len(tickets)),
    )


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
    before: pd.DataFrame, after: pd.DataFrame, removed: pd.DataFrame
) -> ValidationResult:
    """Validate interaction data after a purge with a GX suite.

    ``before``, ``after`` and ``removed`` have int columns ``user`` and ``item``. The three frames
    are stacked into one, each row tagged with its ``frame`` and with 0/1 indicators saying in
    which frames its (user, item) pair occurs; the checks are GX expectations on that frame,
    restricted to the relevant rows with row conditions. The expected size of ``after`` is
    ``len(before)`` minus the rows of ``before`` whose pair is removed (the number of removed pairs
    that were present, when ``before`` has no duplicates).
    """
    frames = {"before": before, "after": after, "removed": removed}
    parts = []
    for role, data in frames.items():
        missing = [c for c in ("user", "item") if c not in data.columns]
        if missing:
            raise ValueError(f"validate_purge: {role!r} lacks column(s) {missing}")
        parts.append(
            pd.DataFrame(
                {
                    "frame": pd.Series([role] * len(data), dtype=object),
                    "user": data["user"].to_numpy(dtype="int64"),
                    "item": data["item"].to_numpy(dtype="int64"),
                }
            )
        )
    stacked = pd.concat(parts, ignore_index=True)
    # One int64 key per (user, item) pair: dense codes of both ids, combined.
    user_codes, _ = pd.factorize(stacked["user"])
    item_codes, item_ids = pd.factorize(stacked["item"])
    keys = pd.Series(user_codes.astype("int64") * max(len(item_ids), 1) + item_codes)
    for role in frames:
        role_keys = keys[(stacked["frame"] == role).to_numpy()].unique()
        stacked[f"in_{role}"] = keys.isin(role_keys).to_numpy(dtype="int8")
    removed_rows_of_before = int(
        ((stacked["frame"] == "before") & (stacked["in_removed"] == 1)).sum()
    )
    expected_after_rows = len(before) - removed_rows_of_before

    gx = _gx().module
    expect = gx.expectations
    from great_expectations.expectations.row_conditions import Column

    frame = Column("frame")
    checks = [
        (
            "removed_pairs_were_present",
            expect.ExpectColumnValuesToBeInSet(
                column="in_before", value_set=[1], row_condition=frame == "removed"
            ),
        ),
        (
            "removed_pairs_gone",
            expect.ExpectColumnValuesToBeInSet(
                column="in_after", value_set=[0], row_condition=frame == "removed"
            ),
        ),
        (  # every kept pair of `before` survives ...
            "nothing_else_changed",
            expect.ExpectColumnValuesToBeInSet(
                column="in_after",
                value_set=[1],
                row_condition=(frame == "before") & (Column("in_removed") == 0),
            ),
        ),
        (  # ... and nothing appears that was not there before
            "nothing_else_changed",
            expect.ExpectColumnValuesToBeInSet(
                column="in_before", value_set=[1], row_condition=frame == "after"
            ),
        ),
        (
            "counts_reconcile",
            expect.ExpectTableRowCountToEqual(
                value=expected_after_rows, row_condition=frame == "after"
            ),
        ),
        (
            "no_duplicate_pairs",
            expect.ExpectCompoundColumnsToBeUnique(
                column_list=["user", "item"], row_condition=frame == "after"
            ),
        ),
    ]
    run = _run(PURGE_SUITE, stacked, checks, "BOOLEAN_ONLY")
    return ValidationResult(
        suite=PURGE_SUITE,
        success=run.success,
        failed=run.failed(PURGE_CHECKS),
        row_failures={},
        statistics=run.statistics,
    )


# ---------------------------------------------------------------- GX plumbing


@dataclass(frozen=True)
class _Gx:
    module: Any  # the great_expectations package
    batch_definition: Any  # whole-dataframe batch definition of a pandas data source


@dataclass(frozen=True)
class _Outcome:
    name: str
    success: bool
    indices: list[int] | None  # unexpected row positions; None: not row-level, or it raised


@dataclass(frozen=True)
class _Run:
    success: bool
    outcomes: list[_Outcome]
    statistics: dict[str, int]

    def failed(self, order: tuple[str, ...]) -> tuple[str, ...]:
        names = {outcome.name for outcome in self.outcomes if not outcome.success}
        return tuple(name for name in order if name in names)


_LOCK = threading.RLock()
_STATE: _Gx | None = None


def _gx() -> _Gx:
    """The GX package and a pandas batch definition in an ephemeral context, built once."""
    global _STATE
    with _LOCK:
        if _STATE is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(
                globally=False, metric_calculations=False
            )
            asset = context.data_sources.add_pandas("unlearnrec").add_dataframe_asset("frame")
            _STATE = _Gx(gx, asset.add_batch_definition_whole_dataframe("whole"))
        return _STATE


def _run(
    suite_name: str,
    frame: pd.DataFrame,
    checks: list[tuple[str, Any]],
    result_format: str,
) -> _Run:
    """Validate ``frame`` against the named expectations; map GX's results back to the names."""
    state = _gx()
    suite = state.module.ExpectationSuite(name=suite_name)
    for name, expectation in checks:
        expectation.meta = {"name": name}
        expectation.description = REASONS[name]
        suite.add_expectation(expectation)
    with _LOCK:
        batch = state.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format=result_format)
    outcomes = []
    for item in result.results:
        # Absent when the expectation is not row-level, or when it raised inside GX (whose
        # exception_info takes several shapes, so its presence is the test).
        indices = (item.result or {}).get("unexpected_index_list")
        outcomes.append(_Outcome(item.expectation_config.meta["name"], item.success, indices))
    return _Run(bool(result.success), outcomes, _counts(result.statistics))


def _counts(statistics: Mapping[str, Any]) -> dict[str, int]:
    return {short: int(statistics.get(key, 0)) for key, short in _COUNT_KEYS.items()}


def _add_counts(first: Mapping[str, int], second: Mapping[str, int]) -> dict[str, int]:
    return {key: first.get(key, 0) + second.get(key, 0) for key in _COUNT_KEYS.values()}

"""The GX suites of the compliance workflow: ticket batches and purges.

Every failure is reported under its stable check name, on exactly the offending rows (by the
caller's index labels), and nowhere else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from flows import validation as v

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
KNOWN_USERS = {"u1", "u2", "u3"}
KNOWN_ITEMS = {"i1", "i2", "i3"}
LABELS = [100, 101, 102]  # deliberately not positions: results must use these


@pytest.fixture(scope="module", autouse=True)
def _gx_warm():
    """Pay GX's import and context cost once for the module."""
    v.warm_up()


def at(days: float) -> pd.Timestamp:
    return pd.Timestamp(NOW + timedelta(days=days))


def ticket(**overrides) -> dict:
    row = {
        "external_id": "T-1",
        "kind": "erase_user",
        "subject": "u1",
        "items": "",
        "legal_basis": "GDPR-17(1)(a)",
        "received_at": at(-2),
        "deadline_at": at(28),
    }
    row.update(overrides)
    return row


def good_rows() -> list[dict]:
    return [
        ticket(external_id="T-1", kind="erase_user", subject="u1"),
        ticket(
            external_id="T-2",
            kind="erase_interactions",
            subject="u2",
            items="i1;i2",
            legal_basis="CCPA-1798.105",
        ),
        ticket(
            external_id="T-3",
            kind="take_down_item",
            subject="",
            items="i3",
            legal_basis="GDPR-17(1)(f)",
        ),
    ]


def batch(rows: list[dict], index: list[int] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(rows, index=index if index is not None else LABELS[: len(rows)])
    for column in ("received_at", "deadline_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def check(frame: pd.DataFrame) -> v.ValidationResult:
    return v.validate_ticket_batch(frame, known_users=KNOWN_USERS, known_items=KNOWN_ITEMS, now=NOW)


def test_legal_bases_are_the_gdpr_17_1_grounds_and_the_ccpa_right_to_delete():
    """LEGAL_BASES lists GDPR Art. 17(1)(a)-(f) and CCPA 1798.105, nothing else."""
    assert v.LEGAL_BASES == (
        "GDPR-17(1)(a)",
        "GDPR-17(1)(b)",
        "GDPR-17(1)(c)",
        "GDPR-17(1)(d)",
        "GDPR-17(1)(e)",
        "GDPR-17(1)(f)",
        "CCPA-1798.105",
    )


def test_every_check_name_has_a_human_reason():
    """REASONS holds one non-empty sentence for each check of both suites, and no extra names."""
    assert set(v.REASONS) == set(v.TICKET_CHECKS) | set(v.PURGE_CHECKS)
    assert all(sentence.strip() for sentence in v.REASONS.values())
    assert v.REASONS["subject_is_known_user"] == "the subject is not a known user of the dataset"


# ---------------------------------------------------------------- ticket batches


def test_valid_batch_passes_with_every_expectation_evaluated():
    """A batch of one valid ticket of each kind passes; GX evaluated every expectation and all
    succeeded (a take_down_item with an empty subject is not checked against the users)."""
    result = check(batch(good_rows()))
    assert result.suite == "ticket_batch"
    assert result.success
    assert result.failed == ()
    assert result.row_failures == {}
    assert result.statistics["evaluated"] > len(v.TICKET_CHECKS)
    assert result.statistics["successful"] == result.statistics["evaluated"]
    assert result.statistics["unsuccessful"] == 0
    assert v.explain(result) == []


def test_times_exactly_at_now_are_accepted():
    """received_at == now and deadline_at == now are both within bounds (inclusive)."""
    result = check(batch([ticket(received_at=at(0), deadline_at=at(0))]))
    assert result.success, result


def test_empty_batch_passes():
    """An empty batch (with the required columns) succeeds and reports no rows."""
    empty = batch(good_rows()).iloc[:0]
    result = check(empty)
    assert result.success
    assert result.failed == ()
    assert result.row_failures == {}


BAD_ROWS = {
    "unknown user": (
        {"kind": "erase_user", "subject": "ghost"},
        ("subject_is_known_user",),
    ),
    "unknown user in erase_interactions": (
        {"kind": "erase_interactions", "subject": "ghost", "items": "i1"},
        ("subject_is_known_user",),
    ),
    "unknown item": (
        {"kind": "erase_interactions", "subject": "u2", "items": "i1;nope"},
        ("items_are_known",),
    ),
    "erase_interactions without items": (
        {"kind": "erase_interactions", "subject": "u2", "items": ""},
        ("items_are_known",),
    ),
    "take_down_item with two items": (
        {"kind": "take_down_item", "subject": "", "items": "i1;i2"},
        ("items_are_known",),
    ),
    "past deadline": ({"deadline_at": at(-1)}, ("deadline_not_passed",)),
    "received in the future": ({"received_at": at(1)}, ("received_not_in_future",)),
    "missing received time": ({"received_at": None}, ("received_not_in_future",)),
    "unknown kind": ({"kind": "forget_everything"}, ("kind_is_known",)),
    "unknown legal basis": ({"legal_basis": "GDPR-6(1)(a)"}, ("legal_basis_is_known",)),
    "empty external id": ({"external_id": "  "}, ("external_id_present",)),
    "null external id": ({"external_id": None}, ("external_id_present",)),
    "several faults at once": (
        {"subject": "ghost", "legal_basis": "", "deadline_at": at(-1)},
        ("legal_basis_is_known", "subject_is_known_user", "deadline_not_passed"),
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_row_fails_with_exactly_its_names_on_exactly_that_row(case):
    """The bad ticket (the middle one, label 101) fails with exactly the expected check names;
    the batch fails with those names only and the valid rows around it have no failures."""
    overrides, names = BAD_ROWS[case]
    rows = good_rows()
    rows[1] = ticket(**{**rows[1], **overrides})
    result = check(batch(rows))
    assert not result.success
    assert result.failed == names
    assert result.row_failures == {101: names}
    assert result.statistics["unsuccessful"] >= 1
    assert v.explain(result, 101) == [v.REASONS[name] for name in names]
    assert v.explain(result, 100) == []


def test_duplicate_external_id_fails_every_row_of_that_id():
    """Two tickets sharing an external id both fail external_id_unique_in_batch; the third row,
    with its own id, does not."""
    rows = good_rows()
    rows[2]["external_id"] = rows[0]["external_id"]
    result = check(batch(rows))
    assert result.failed == ("external_id_unique_in_batch",)
    assert result.row_failures == {
        100: ("external_id_unique_in_batch",),
        102: ("external_id_unique_in_batch",),
    }


def test_row_failures_use_the_callers_index_labels():
    """Failures are keyed by the DataFrame's index labels, whatever their order."""
    rows = good_rows()
    rows[0]["subject"] = "ghost"
    result = check(batch(rows, index=[7, 3, 5]))
    assert result.row_failures == {7: ("subject_is_known_user",)}


def test_missing_column_fails_every_row_with_schema_only():
    """A batch without a required column fails as a whole: every row gets "schema" and no other
    check is reported (GX counts two failed expectations: the column's existence, and the one
    check on that column, which could not run)."""
    frame = batch(good_rows()).drop(columns=["legal_basis"])
    result = check(frame)
    assert not result.success
    assert result.failed == ("schema",)
    assert result.row_failures == {label: ("schema",) for label in LABELS}
    assert result.statistics["unsuccessful"] == 2
    assert v.explain(result, 102) == [v.REASONS["schema"]]


def test_extra_columns_are_ignored():
    """Columns beyond the required ones (e.g. a ledger id) do not affect the outcome."""
    frame = batch(good_rows()).assign(ticket_id=[1, 2, 3])
    assert check(frame).success


# ---------------------------------------------------------------- purges


def pairs(*edges: tuple[int, int]) -> pd.DataFrame:
    return pd.DataFrame(np.array(edges, dtype=np.int64).reshape(-1, 2), columns=["user", "item"])


BEFORE = pairs((0, 0), (0, 1), (1, 1), (1, 2), (2, 0), (2, 2))
REMOVED = pairs((0, 1), (2, 2))
AFTER = pairs((0, 0), (1, 1), (1, 2), (2, 0))


def test_correct_purge_passes():
    """Exactly the removed pairs gone, everything else kept: the purge suite passes."""
    result = v.validate_purge(BEFORE, AFTER, REMOVED)
    assert result.suite == "purge"
    assert result.success
    assert result.failed == ()
    assert result.row_failures == {}
    assert result.statistics["evaluated"] == result.statistics["successful"] > 0


def test_empty_purge_passes():
    """Nothing before, nothing removed, nothing after is a valid (empty) purge."""
    empty = pairs()
    assert v.validate_purge(empty, empty, empty).success


@pytest.mark.parametrize(
    ("after", "removed", "names"),
    [
        pytest.param(
            pd.concat([AFTER, pairs((2, 2))]),
            REMOVED,
            ("removed_pairs_gone", "counts_reconcile"),
            id="leaves a removed pair",
        ),
        pytest.param(
            AFTER.iloc[1:],
            REMOVED,
            ("nothing_else_changed", "counts_reconcile"),
            id="also drops another pair",
        ),
        pytest.param(
            pd.concat([AFTER, pairs((5, 5))]),
            REMOVED,
            ("nothing_else_changed", "counts_reconcile"),
            id="adds a pair",
        ),
        pytest.param(
            AFTER,
            pd.concat([REMOVED, pairs((9, 9))]),
            ("removed_pairs_were_present",),
            id="removes a pair that was never present",
        ),
        pytest.param(
            pd.concat([AFTER, pairs((0, 0))]),
            REMOVED,
            ("counts_reconcile", "no_duplicate_pairs"),
            id="duplicates a kept pair",
        ),
    ],
)
def test_bad_purge_fails_with_the_right_names(after, removed, names):
    """Each kind of faulty purge fails with exactly the checks it violates."""
    result = v.validate_purge(BEFORE, after, removed)
    assert not result.success
    assert result.failed == names
    assert v.explain(result) == [v.REASONS[name] for name in names]


# ---------------------------------------------------------------- interactions named


INTERACTIONS = {"u1": {"i1"}, "u2": {"i1", "i2"}, "u3": set()}


def check_with_interactions(frame: pd.DataFrame) -> v.ValidationResult:
    return v.validate_ticket_batch(
        frame,
        known_users=KNOWN_USERS,
        known_items=KNOWN_ITEMS,
        now=NOW,
        interactions=INTERACTIONS,
    )


def test_erase_interactions_of_items_the_subject_never_touched_is_rejected():
    """u2 interacted with i1 and i2, not i3: naming i3 (alone or beside i1) fails
    ``items_were_interacted`` on that row only, with a reason that says so."""
    rows = good_rows()
    assert check_with_interactions(batch(rows)).success  # u2: i1;i2, both interacted
    for items in ("i3", "i1;i3"):
        rows[1] = ticket(**{**rows[1], "items": items})
        result = check_with_interactions(batch(rows))
        assert result.row_failures == {101: ("items_were_interacted",)}
        assert "not one the subject ever interacted with" in v.explain(result, 101)[0]


def test_interactions_check_leaves_other_kinds_and_faults_to_their_own_checks():
    """erase_user of a subject with no interactions is not this check's business; an unknown
    item or user is reported by its own check, not twice."""
    rows = [
        ticket(external_id="T-1", kind="erase_user", subject="u3"),
        ticket(external_id="T-2", kind="erase_interactions", subject="u2", items="nope"),
        ticket(external_id="T-3", kind="erase_interactions", subject="ghost", items="i1"),
    ]
    result = check_with_interactions(batch(rows, index=[1, 2, 3]))
    assert result.row_failures == {2: ("items_are_known",), 3: ("subject_is_known_user",)}

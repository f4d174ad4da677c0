"""Custom Great Expectations for the compliance suites: membership in sets passed by reference.

GX's ``ExpectColumnValuesToBeInSet`` copies, hashes and renders its ``value_set`` per expectation
(a one-million-id ``value_set`` took over three minutes in GX 1.24), so the dataset's ids cannot
be given to it. The expectations here name their reference data instead (``set_name="users"``):
the data are registered for the duration of one validation with :func:`lookups`, the suites
stored on disk hold only the names, and the metric reads the registered object.

The ticket batch's ``subject`` column carries each ticket's position in the batch, not the
subject: the subject is read through the registered ``subjects`` sequence (``through=``), so no
subject ever reaches GX's results store or its data docs (storage limitation, GDPR Art. 5(1)(e)).

Importing this module imports GX (seconds): ``flows.validation`` imports it lazily.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    ColumnPairMapExpectation,
)
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    ColumnPairMapMetricProvider,
    column_condition_partial,
    column_pair_condition_partial,
)

_REGISTERED: dict[str, Any] = {}
_REGISTRY_LOCK = threading.RLock()


@contextmanager
def lookups(**named: Any) -> Iterator[None]:
    """Register ``named`` reference data for the validation run inside the block.

    Values: a set / frozenset (membership by hashing), a sorted or unsorted int64 numpy array
    (membership with ``np.isin``), a sequence (``through``: position -> value), a mapping, or
    None. One validation at a time: the lock is held for the whole block."""
    with _REGISTRY_LOCK:
        _REGISTERED.clear()
        _REGISTERED.update(named)
        try:
            yield
        finally:
            _REGISTERED.clear()


def _lookup(name: str) -> Any:
    try:
        return _REGISTERED[name]
    except KeyError:  # GX catches it: the expectation fails, nothing passes unchecked
        raise LookupError(f"no reference data {name!r} registered for this validation") from None


def _members(values: list[Any] | np.ndarray, reference: Any) -> np.ndarray:
    """Boolean membership of each value in ``reference`` (array: vectorised; else hashing)."""
    if isinstance(reference, np.ndarray):
        return np.isin(np.asarray(values), reference)
    return np.fromiter((value in reference for value in values), dtype=bool, count=len(values))


def _resolved(column: pd.Series, through: str | None) -> list[Any] | np.ndarray:
    """The column's values, or (``through``) the named sequence's entries at those positions."""
    if through is None:
        return column.to_numpy()
    sequence = _lookup(through)
    return [sequence[int(position)] for position in column.tolist()]


def _item_lists(column: pd.Series, separator: str) -> list[list[str]]:
    return [[p.strip() for p in str(v).split(separator) if p.strip()] for v in column.tolist()]


# ------------------------------------------------------------------ metrics


class ColumnValuesInNamedSet(ColumnMapMetricProvider):
    condition_metric_name = "column_values.in_named_set"
    condition_value_keys = ("set_name", "through")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, set_name: str, through: str | None = None, **kwargs):
        return pd.Series(_members(_resolved(column, through), _lookup(set_name)), column.index)


class ColumnValuesNotInNamedSet(ColumnMapMetricProvider):
    condition_metric_name = "column_values.not_in_named_set"
    condition_value_keys = ("set_name", "through")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, set_name: str, through: str | None = None, **kwargs):
        return pd.Series(~_members(_resolved(column, through), _lookup(set_name)), column.index)


class ColumnItemListsInNamedSet(ColumnMapMetricProvider):
    condition_metric_name = "column_values.item_lists_in_named_set"
    condition_value_keys = ("set_name", "separator", "min_items", "max_items")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(
        cls,
        column: pd.Series,
        set_name: str,
        separator: str,
        min_items: int = 1,
        max_items: int | None = None,
        **kwargs,
    ):
        known = _lookup(set_name)
        ok = [
            min_items <= len(parts)
            and (max_items is None or len(parts) <= max_items)
            and all(item in known for item in parts)
            for parts in _item_lists(column, separator)
        ]
        return pd.Series(ok, index=column.index, dtype=bool)


class ColumnPairItemsInteracted(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.items_interacted"
    condition_value_keys = ("subjects", "users", "items", "interactions", "separator")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(
        cls,
        column_A: pd.Series,
        column_B: pd.Series,
        subjects: str,
        users: str,
        items: str,
        interactions: str,
        separator: str,
        **kwargs,
    ):
        touched: Mapping[str, Any] | None = _lookup(interactions)
        known_users, known_items = _lookup(users), _lookup(items)
        ok = []
        for subject, parts in zip(
            _resolved(column_A, subjects), _item_lists(column_B, separator), strict=True
        ):
            # Unknown subjects and items are other checks' failures, not this one's.
            if touched is None or subject not in known_users:
                ok.append(True)
                continue
            theirs = touched.get(subject, ())
            ok.append(all(item in theirs for item in parts if item in known_items))
        return pd.Series(ok, index=column_A.index, dtype=bool)


# ------------------------------------------------------------------ expectations


class ExpectColumnValuesToBeInNamedSet(ColumnMapExpectation):
    """Expect each value (with ``through``: the named sequence's entry at the position the value
    gives) to be a member of the reference set registered as ``set_name``."""

    set_name: str
    through: str | None = None

    map_metric = "column_values.in_named_set"
    success_keys: ClassVar[tuple[str, ...]] = ("set_name", "through", "mostly")
    args_keys = ("column", "set_name")


class ExpectColumnValuesToNotBeInNamedSet(ColumnMapExpectation):
    """Expect no value (with ``through``: no entry it points at) to be in the named set."""

    set_name: str
    through: str | None = None

    map_metric = "column_values.not_in_named_set"
    success_keys: ClassVar[tuple[str, ...]] = ("set_name", "through", "mostly")
    args_keys = ("column", "set_name")


class ExpectColumnItemListsToBeInNamedSet(ColumnMapExpectation):
    """Expect each value, a ``separator``-joined list of ids, to hold between ``min_items`` and
    ``max_items`` ids (None: no upper bound), each a member of the named set."""

    set_name: str
    separator: str = ";"
    min_items: int = 1
    max_items: int | None = None

    map_metric = "column_values.item_lists_in_named_set"
    success_keys: ClassVar[tuple[str, ...]] = (
        "set_name",
        "separator",
        "min_items",
        "max_items",
        "mostly",
    )
    args_keys = ("column", "set_name")


class ExpectColumnPairItemsToBeInteractedBySubject(ColumnPairMapExpectation):
    """Expect every known item listed in ``column_B`` to be one the subject of ``column_A`` (read
    through ``subjects``) interacted with, per the ``interactions`` mapping (None: vacuously
    true). Rows whose subject is not a known user pass: another expectation reports them."""

    subjects: str
    users: str
    items: str
    interactions: str
    separator: str = ";"
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "neither"
    )

    map_metric = "column_pair_values.items_interacted"
    success_keys: ClassVar[tuple[str, ...]] = (
        "subjects",
        "users",
        "items",
        "interactions",
        "separator",
        "ignore_row_if",
        "mostly",
    )
    args_keys = ("column_A", "column_B")

"""Provisional verification (no retrained reference yet) is two-sided: it fails a model that
still remembers the erased edges and one that over-unlearned them."""

from __future__ import annotations

import pytest

from unlearnrec.compliance.modeling import provisional_reasons


@pytest.mark.parametrize("auc", [0.46, 0.5, 0.54])
def test_auc_near_chance_with_lost_signal_passes(auc):
    assert provisional_reasons(1.8, auc, 0.05) == []


@pytest.mark.parametrize("auc", [0.23, 0.26, 0.44])
def test_auc_far_below_chance_is_over_unlearning(auc):
    """The runs that passed at AUC 0.23-0.26: erased edges scored under unseen ones, which an
    attacker reads as membership just as well (flip the score)."""
    reasons = provisional_reasons(1.8, auc, 0.05)
    assert len(reasons) == 1 and "over-unlearning" in reasons[0]
    assert f"{auc:.3f} below chance - 0.05" in reasons[0]


def test_auc_far_above_chance_is_under_unlearning():
    reasons = provisional_reasons(1.8, 0.61, 0.05)
    assert len(reasons) == 1 and "under-unlearning" in reasons[0]


def test_no_lost_membership_signal_fails():
    reasons = provisional_reasons(0.97, 0.5, 0.05)
    assert len(reasons) == 1 and "MI-BF 0.970 is not above 1" in reasons[0]


def test_erased_users_and_items_below_chance_are_what_retrain_gives():
    """A batch that erases whole users or items: their edges sit far below unseen pairs under
    retrain too, so the lower bound is checked on the batch's other erased edges only."""
    assert provisional_reasons(2.1, 0.15, 0.05, resets_nodes=True, kept_auc=None) == []
    assert provisional_reasons(2.1, 0.15, 0.05, resets_nodes=True, kept_auc=0.49) == []
    reasons = provisional_reasons(2.1, 0.15, 0.05, resets_nodes=True, kept_auc=0.3)
    assert len(reasons) == 1 and "kept users and items 0.300" in reasons[0]
    # the upper bound still holds for the whole batch
    assert "under-unlearning" in provisional_reasons(2.1, 0.7, 0.05, resets_nodes=True)[0]

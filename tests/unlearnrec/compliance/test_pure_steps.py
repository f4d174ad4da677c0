"""The compliance steps that are pure functions over values, on a 20-node graph and no database:
ticket -> pairs, the purge with tombstones, the request a batch becomes, and the certificate body
rebuilt from its inputs with the clock passed in (the decision after a verification,
``fallback.decide``, is tested in ``test_verification_record.py``)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np

from unlearnrec.compliance.certify import certificate_body
from unlearnrec.compliance.erasure import TOMBSTONE, tombstone
from unlearnrec.compliance.modeling import request_of
from unlearnrec.compliance.pairs import resolve_pairs
from unlearnrec.data.splits import Splits
from unlearnrec.ledger import DatasetVersion, ModelVersion, Ticket, UnlearningRun

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _files() -> Splits:
    """10 users x 10 items (20 nodes): user u interacted with items u, u+1, u+2 (mod 10)."""
    pairs = np.array([(u, (u + k) % 10) for u in range(10) for k in range(3)], dtype=np.int64)
    fit, valid, test = pairs[::3], pairs[1::3], pairs[2::3]
    users = np.array([f"u{u}" for u in range(10)], dtype=object)
    items = np.array([f"i{i}" for i in range(10)], dtype=object)
    return Splits(10, 10, fit, valid, test, users, items)


def _ticket(kind: str, subject: str | None = None, items: list[str] | None = None) -> Ticket:
    return Ticket(
        id=1,
        external_id="T-1",
        kind=kind,
        subject=subject,
        subject_pseudonym=_pseudonymise(subject) if subject else "",
        items=items or [],
        legal_basis="GDPR-17(1)(a)",
        received_at=NOW,
        deadline_at=NOW,
    )


def _pseudonymise(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def test_each_ticket_kind_resolves_to_its_pairs_over_every_split():
    files = _files()
    user = resolve_pairs(files, _ticket("erase_user", "u3"))
    assert sorted(map(tuple, user.tolist())) == [(3, 3), (3, 4), (3, 5)]
    item = resolve_pairs(files, _ticket("take_down_item", items=["i4"]))
    assert sorted(map(tuple, item.tolist())) == [(2, 4), (3, 4), (4, 4)]
    pair = resolve_pairs(files, _ticket("erase_interactions", "u3", ["i5", "i9"]))
    assert pair.tolist() == [[3, 5]]  # i9 is no interaction of u3's: nothing for it
    assert len(resolve_pairs(files, _ticket("erase_user", "nobody"))) == 0


def test_the_purge_removes_the_pairs_and_tombstones_the_erased_user():
    files = _files()
    removed = resolve_pairs(files, _ticket("erase_user", "u3"))
    after = tombstone(files.without(removed), [3], _pseudonymise)
    assert len(after.all_pairs()) == len(files.all_pairs()) - 3
    assert not (after.all_pairs()[:, 0] == 3).any()
    assert after.user_ids[3] == TOMBSTONE + _pseudonymise("u3")  # no raw id kept
    assert list(after.user_ids[:3]) == ["u0", "u1", "u2"]
    # the request the model sees keeps its kind and names the user erased whole
    request = request_of(removed, files, after, {"erase_user"})
    assert request.kind == "users" and request.users == (3,)
    mixed = request_of(removed, files, after, {"erase_user", "take_down_item"})
    assert mixed.kind == "mixed"


def test_a_certificate_body_is_rebuilt_from_its_inputs_and_the_clock():
    run = UnlearningRun(
        id=7,
        batch_key="k",
        method="unlearnrec",
        params={"finetune_steps": 20},
        device="cpu",
        ticket_ids=[1],
        removed_count=3,
        removed_hash="h",
        policy_id="gdpr-default",
        policy_version=2,
        policy_sha256="s",
        timings={"unlearn_seconds": 0.5},
    )
    rows = {
        "dataset_before": DatasetVersion(id=1, dvc_md5="d0", content_hash="c0"),
        "dataset_after": DatasetVersion(id=2, dvc_md5="d1", content_hash="c1"),
        "model_before": ModelVersion(id=1, kind="base", sha256="m0", dvc_md5="md0"),
        "model_after": ModelVersion(id=2, kind="unlearned", sha256="m1", dvc_md5="md1"),
    }
    args = dict(
        run=run,
        ticket=_ticket("erase_user", "u3"),
        status="provisional",
        removed_hash="h",
        removed_count=3,
        audit_position=12,
        audit_hash="e",
        **rows,
    )
    body = certificate_body(**args, issued_at=NOW)
    assert body == certificate_body(**args, issued_at=NOW)  # same inputs, same body
    assert body["issued_at"] == "2026-12-01T12:00:00+00:00"
    assert body["certificate_id"] == "cert-r7-t1-provisional"
    assert body["subjects"] == [_pseudonymise("u3")] and "u3" not in str(body)  # pseudonyms
    assert body["model"]["after"] == {"sha256": "m1", "dvc_md5": "md1", "kind": "unlearned"}
    later = certificate_body(**args, issued_at=datetime(2026, 12, 2, tzinfo=UTC))
    assert later["issued_at"] != body["issued_at"]
    assert "purge_check" not in body  # the run recorded no purge check

    # A run that recorded its purge check: the certificate carries its summary, nothing more
    # (not the failed names' list, not the data-docs path on this host).
    run.purge_check = {
        "suite": "purge",
        "success": True,
        "failed": [],
        "statistics": {"evaluated": 6, "successful": 6, "unsuccessful": 0},
        "result_id": "purge/run-7-attempt-1/20261201T120000.000000Z/unlearnrec-frame",
        "data_docs": "gx/uncommitted/data_docs/local_site/validations/purge/x.html",
    }
    checked = certificate_body(**args, issued_at=NOW)
    assert checked["purge_check"] == {
        "suite": "purge",
        "success": True,
        "evaluated": 6,
        "successful": 6,
        "result_id": "purge/run-7-attempt-1/20261201T120000.000000Z/unlearnrec-frame",
    }
    assert {k: v for k, v in checked.items() if k != "purge_check"} == body

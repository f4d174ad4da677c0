"""Compliance policies (``unlearnrec/records/policy.py``): the default policy loads with its file
hash; invalid files raise PolicyError naming the file and field; regimes map legal bases to
deadlines; per-kind profiles override the unlearning parameters."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from unlearnrec.records.policy import Deadline, Policy, PolicyError, load_policy

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "policies" / "gdpr-default.yaml"


def minimal() -> dict:
    return {"id": "test-policy", "version": 2, "deadlines": {"GDPR": {"months": 1}}}


def write(tmp_path: Path, doc, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_default_policy_loads_with_its_sha256():
    """The shipped policy loads via a str path; ``sha256`` is the hash of the file's bytes."""
    policy = load_policy("policies/gdpr-default.yaml" if Path("policies").is_dir() else DEFAULT)
    assert policy.id == "gdpr-default" and policy.version == 2
    assert policy.sha256 == hashlib.sha256(DEFAULT.read_bytes()).hexdigest()
    assert len(policy.sha256) == 64
    assert policy.describe() == {"id": "gdpr-default", "version": 2, "sha256": policy.sha256}
    assert policy.deadlines["GDPR"] == Deadline(months=1, max_extension_days=61)
    assert policy.deadlines["CCPA"] == Deadline(days=45, max_extension_days=45)
    assert policy.unlearning.method == "unlearnrec"
    assert policy.verification.mode == "provisional"
    assert policy.verification.thresholds.min_utility_ratio == 0.97
    assert policy.on_failure.action == "retrain" and policy.on_failure.max_attempts == 2


def test_minimal_policy_gets_defaults(tmp_path):
    """Only id, version and deadlines are required; the rest takes documented defaults."""
    policy = load_policy(write(tmp_path, minimal()))
    assert policy.batching.window_minutes == 60 and policy.batching.max_tickets == 100
    assert policy.retention.purge_erased_versions is True
    assert policy.params_for("erase_user") == {}


def test_policy_is_frozen():
    """A loaded policy cannot be changed in memory (certificates cite it by hash)."""
    policy = load_policy(DEFAULT)
    with pytest.raises(ValueError, match="frozen"):
        policy.version = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda d: d.update(colour="red"), "colour", "Extra inputs are not permitted"),
        (lambda d: d["deadlines"]["GDPR"].update(weeks=2), "deadlines.GDPR.weeks", "Extra"),
        (lambda d: d.update(batching={"window_minutes": 5, "size": 9}), "batching.size", "Extra"),
        (lambda d: d["deadlines"].update(GDPR={"months": 0}), "deadlines", "deadline for GDPR"),
        (lambda d: d["deadlines"].update(CCPA={"days": 0}), "deadlines", "is zero"),
        (lambda d: d.update(deadlines={}), "deadlines", "at least one legal regime"),
        (lambda d: d["deadlines"].update(GDPR={"days": -1}), "deadlines.GDPR.days", "greater"),
        (lambda d: d.update(id="GDPR Default!"), "id", "should match pattern"),
        (lambda d: d.update(id="-leading-dash"), "id", "should match pattern"),
        (lambda d: d.update(version=0), "version", "greater than or equal to 1"),
        (lambda d: d.pop("deadlines"), "deadlines", "Field required"),
        (lambda d: d.update(on_failure={"action": "ignore"}), "on_failure.action", "'retrain'"),
        (
            lambda d: d.update(verification={"thresholds": {"min_utility_ratio": 2}}),
            "verification.thresholds.min_utility_ratio",
            "less than or equal to 1.5",
        ),
    ],
    ids=[
        "unknown-key",
        "unknown-nested-key",
        "unknown-section-key",
        "zero-gdpr-deadline",
        "zero-ccpa-deadline",
        "no-regimes",
        "negative-days",
        "bad-id",
        "id-leading-dash",
        "version-zero",
        "missing-deadlines",
        "bad-failure-action",
        "threshold-range",
    ],
)
def test_invalid_policy_names_file_and_field(tmp_path, change, field, message):
    """Every validation failure raises PolicyError naming the file, the field and the rule."""
    doc = minimal()
    change(doc)
    path = write(tmp_path, doc, "broken-policy.yaml")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    text = str(info.value)
    assert text.startswith(f"{path}: invalid policy: "), text
    assert f"{field}: " in text or f"{field}." in text, text
    assert message in text, text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- id: x\n- version: 1\n", "a policy must be a mapping"),
        ("just a string\n", "a policy must be a mapping"),
        ("", "a policy must be a mapping"),
        ("id: [unclosed\nversion: 1\n", "not valid YAML"),
        ("id: x\n  version: : 1\n\t- bad", "not valid YAML"),
    ],
    ids=["list", "scalar", "empty", "unclosed-flow", "bad-indent"],
)
def test_unreadable_policy_documents(tmp_path, content, message):
    """A document that is not a YAML mapping raises PolicyError naming the file."""
    path = write(tmp_path, content, "odd.yaml")
    with pytest.raises(PolicyError, match=message) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: ")


def test_missing_policy_file(tmp_path):
    """A missing file raises PolicyError naming it (not a bare OSError)."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match="cannot read policy") as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: ")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("basis", "regime"),
    [
        ("GDPR-17(1)(a)", "GDPR"),
        ("GDPR-17(1)(f)", "GDPR"),
        ("gdpr-17(1)(b)", "GDPR"),
        ("GDPR", "GDPR"),
        ("CCPA-1798.105", "CCPA"),
    ],
)
def test_deadline_for_maps_the_legal_basis_to_its_regime(basis, regime):
    """The regime is the legal basis up to the first dash, case-insensitively."""
    policy = load_policy(DEFAULT)
    assert policy.deadline_for(basis) is policy.deadlines[regime]


@pytest.mark.parametrize("basis", ["LGPD-18", "", "-17", "PIPEDA"])
def test_deadline_for_unknown_regime_raises(basis):
    """An unknown regime raises PolicyError naming the policy and the regime."""
    policy = load_policy(DEFAULT)
    regime = basis.split("-", 1)[0].upper()
    with pytest.raises(PolicyError, match=f"policy gdpr-default v2 has no deadline for '{regime}'"):
        policy.deadline_for(basis)


def test_deadline_due_dates():
    """Months are calendar months clamped to the month's end; days and extensions add days."""
    gdpr = load_policy(DEFAULT).deadline_for("GDPR-17(1)(a)")
    ccpa = load_policy(DEFAULT).deadline_for("CCPA-1798.105")
    jan31 = datetime(2023, 1, 31, 17, 45, tzinfo=UTC)
    assert gdpr.due(jan31) == datetime(2023, 2, 28, 17, 45, tzinfo=UTC)
    assert gdpr.due(jan31.replace(year=2024)) == datetime(2024, 2, 29, 17, 45, tzinfo=UTC)
    assert gdpr.due(datetime(2024, 8, 31, tzinfo=UTC)) == datetime(2024, 9, 30, tzinfo=UTC)
    assert gdpr.due(datetime(2024, 12, 15, tzinfo=UTC)) == datetime(2025, 1, 15, tzinfo=UTC)
    assert gdpr.due(jan31, 10) == datetime(2023, 3, 10, 17, 45, tzinfo=UTC)
    assert ccpa.due(jan31) == jan31 + timedelta(days=45)
    assert ccpa.due(jan31, 45) == jan31 + timedelta(days=90)
    both = Deadline(months=2, days=3)  # 31 Dec + 2 months = 29 Feb, + 3 days
    assert both.due(datetime(2023, 12, 31, tzinfo=UTC)) == datetime(2024, 3, 3, tzinfo=UTC)


def test_params_for_merges_the_kind_profile(tmp_path):
    """``params_for(kind)`` is the base params overridden by that kind's profile; kinds without
    a profile get the base params; the policy itself is not modified."""
    doc = minimal()
    doc["unlearning"] = {
        "method": "unlearnrec",
        "params": {"finetune_lr": 0.001, "finetune_epochs": 5},
        "profiles": {"erase_interactions": {"finetune_lr": 0.01, "finetune_lambda_u": 0.5}},
    }
    policy = load_policy(write(tmp_path, doc))
    assert policy.params_for("erase_interactions") == {
        "finetune_lr": 0.01,
        "finetune_epochs": 5,
        "finetune_lambda_u": 0.5,
    }
    assert policy.params_for("erase_user") == {"finetune_lr": 0.001, "finetune_epochs": 5}
    merged = policy.params_for("erase_interactions")
    merged["finetune_lr"] = 99
    assert policy.unlearning.params["finetune_lr"] == 0.001
    assert policy.params_for("erase_interactions")["finetune_lr"] == 0.01


def test_sha256_changes_with_the_file(tmp_path):
    """Two files with the same content but different bytes (a comment) differ in sha256."""
    a = load_policy(write(tmp_path, minimal(), "a.yaml"))
    b_path = tmp_path / "b.yaml"
    b_path.write_text("# comment\n" + yaml.safe_dump(minimal()), encoding="utf-8")
    b = load_policy(b_path)
    assert a.model_dump(exclude={"sha256"}) == b.model_dump(exclude={"sha256"})
    assert a.sha256 != b.sha256
    assert isinstance(a, Policy)


@pytest.mark.parametrize("extra", ["sha256: abc\n", "1: one\n"])
def test_odd_top_level_keys_raise_policy_error(tmp_path, extra):
    """A ``sha256`` key or a non-string key in the file is a PolicyError like any other."""
    path = write(tmp_path, yaml.safe_dump(minimal()) + extra)
    with pytest.raises(PolicyError, match=str(path)):
        load_policy(path)


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_policy_loads_and_its_method_accepts_its_params(path):
    """A shipped policy names a registered method and settings that method takes (a typo in a
    ShardedConfig or UnlearnRecConfig field fails here, not at the first erasure)."""
    from unlearnrec.unlearning import METHODS

    policy = load_policy(path)
    assert policy.unlearning.method in METHODS
    for kind in ("erase_user", "erase_interactions", "take_down_item"):
        METHODS[policy.unlearning.method](policy.params_for(kind))

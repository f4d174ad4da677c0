"""Certificates of erasure: keys, pseudonyms, canonical JSON, signing and verification."""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys

import pytest

from unlearnrec.records.certificates import (
    REQUIRED_FIELDS,
    SCHEMA,
    KeyPermissionError,
    canonical_json,
    certificate_digest,
    export_public_key,
    hash_interactions,
    key_id,
    load_or_create_secret,
    load_or_create_signing_key,
    load_public_key,
    pseudonymise,
    public_key_pem,
    read_certificate,
    sha256_hex,
    sign_certificate,
    verify_certificate,
    write_certificate,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def key(tmp_path):
    return load_or_create_signing_key(tmp_path / "keys" / "signing.pem")


@pytest.fixture
def artifacts(tmp_path):
    root = tmp_path / "artifacts"
    (root / "runs" / "t1").mkdir(parents=True)
    (root / "runs" / "t1" / "model.pt").write_bytes(b"weights after unlearning")
    (root / "runs" / "t1" / "report.json").write_bytes(b'{"recall@20": 0.1}')
    return root


@pytest.fixture
def body(artifacts):
    """A complete certificate body, with floats, nested lists and non-ASCII text."""
    secret = b"s" * 32
    pairs = [(pseudonymise("u7", secret), "i3"), (pseudonymise("u7", secret), "i12")]
    return {
        "schema": SCHEMA,
        "certificate_id": "cert-0001",
        "issued_at": "2025-01-02T03:04:05+00:00",
        "tickets": ["T-1"],
        "subjects": [pseudonymise("u7", secret)],
        "removed_interactions": {
            "count": 2,
            "hash": hash_interactions(pairs),
            "pairs_pseudonymised": [list(p) for p in pairs],
        },
        "dataset": {"name": "tiny", "hash": "ab" * 32},
        "model": {"name": "lightgcn", "embedding_dim": 16, "lr": 0.001},
        "method": {"name": "influence_encoder", "steps": 3},
        "verification": {"passed": True, "recall@20": 0.123456789012345, "mia_auc": 0.51},
        "policy": {"id": "gdpr-art17", "version": 2, "note": "Löschung — érasure"},
        "audit": {"actor": "flow", "events": [["received", 0.0], ["done", 1.5]]},
        "timings": {"unlearn_s": 0.25, "verify_s": 1e-3},
        "artifacts": [
            {"path": p, "sha256": sha256_hex((artifacts / p).read_bytes())}
            for p in ("runs/t1/model.pt", "runs/t1/report.json")
        ],
    }


# ---------------------------------------------------------------- keys and secrets


@posix_only
def test_signing_key_is_created_private_and_reused(tmp_path):
    """The first call writes a 0600 PKCS8 key in a 0700 folder; the second loads the same key."""
    path = tmp_path / "secrets" / "signing.pem"
    first = load_or_create_signing_key(path)
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    second = load_or_create_signing_key(path)
    assert key_id(second) == key_id(first)
    assert not [p for p in path.parent.iterdir() if p.name != "signing.pem"]  # no temp left


@posix_only
@pytest.mark.parametrize("loader", [load_or_create_signing_key, load_or_create_secret])
def test_too_open_secret_files_are_refused_naming_the_file(tmp_path, loader):
    """A key or secret readable by group/others raises KeyPermissionError telling to chmod 600."""
    path = tmp_path / "secret-file"
    loader(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyPermissionError) as info:
        loader(path)
    assert isinstance(info.value, PermissionError)
    assert str(path) in str(info.value) and "chmod 600" in str(info.value)
    os.chmod(path, 0o600)
    loader(path)  # fixed permissions are accepted again


def test_public_key_export_round_trips_and_ids_are_stable(tmp_path, key):
    """The exported 0644 PEM loads back (from file or bytes) with the same 16-hex key id."""
    path = tmp_path / "public.pem"
    kid = export_public_key(key, path)
    assert kid == key_id(key) == key_id(key.public_key())
    assert len(kid) == 16 and int(kid, 16) >= 0
    if os.name == "posix":
        assert _mode(path) == 0o644
    assert b"PRIVATE" not in path.read_bytes()
    assert key_id(load_public_key(path)) == kid
    assert key_id(load_public_key(str(path))) == kid
    assert key_id(load_public_key(public_key_pem(key))) == kid
    assert key_id(load_public_key(public_key_pem(key).decode())) == kid


@posix_only
def test_secret_is_32_bytes_hex_private_and_reused(tmp_path):
    """The pseudonym secret is 32 random bytes stored as hex with mode 0600, reloaded as is."""
    path = tmp_path / "pseudonym.secret"
    secret = load_or_create_secret(path)
    assert len(secret) == 32
    assert _mode(path) == 0o600
    assert bytes.fromhex(path.read_text().strip()) == secret
    assert load_or_create_secret(path) == secret


def test_pseudonyms_are_stable_per_secret_and_hide_the_subject():
    """Same subject and secret give the same pseudonym; another secret gives another one."""
    a, b = b"a" * 32, b"b" * 32
    p = pseudonymise("alice@example.com", a)
    assert p == pseudonymise("alice@example.com", a)
    assert p.startswith("ps_") and len(p) == 3 + 32
    assert p != pseudonymise("alice@example.com", b)
    assert p != pseudonymise("bob@example.com", a)
    assert "alice" not in p


# ---------------------------------------------------------------- canonical JSON and hashes


def test_canonical_json_is_order_independent_and_byte_stable():
    """Key order, tuples vs lists and last-bit float noise do not change the bytes."""
    a = {"b": [1, 2.5, (3, "x")], "a": {"z": 0.1 + 0.2, "y": "é"}, "c": None, "d": True}
    b = {"d": True, "c": None, "a": {"y": "é", "z": 0.3}, "b": [1, 2.5, [3, "x"]]}
    assert canonical_json(a) == canonical_json(b)
    assert canonical_json(a) == (
        '{"a":{"y":"é","z":0.3},"b":[1,2.5,[3,"x"]],"c":null,"d":true}'.encode()
    )
    assert canonical_json(json.loads(canonical_json(a))) == canonical_json(a)
    assert canonical_json(-0.0) == canonical_json(0.0)


def test_canonical_json_rejects_non_json_values_naming_where():
    """A set, bytes or non-str key raises TypeError with its key path; NaN raises ValueError."""
    with pytest.raises(TypeError, match=r"\$\.model\.layers\[1\]"):
        canonical_json({"model": {"layers": [1, {2, 3}]}})
    with pytest.raises(TypeError, match=r"\$\.blob"):
        canonical_json({"blob": b"raw"})
    with pytest.raises(TypeError, match="key 1"):
        canonical_json({"m": {1: "x"}})
    with pytest.raises(ValueError, match=r"\$\.x"):
        canonical_json({"x": float("nan")})


def test_hash_interactions_is_order_independent():
    """The interaction hash ignores order but changes if a pair changes."""
    pairs = [("u1", "i1"), ("u2", "i5"), ("u1", "i9")]
    h = hash_interactions(pairs)
    assert h == hash_interactions(reversed(pairs))
    assert h == hash_interactions(iter(sorted(pairs)))
    assert h != hash_interactions([("u1", "i1"), ("u2", "i5"), ("u1", "i8")])
    assert h != hash_interactions([("i1", "u1"), ("u2", "i5"), ("u1", "i9")])
    assert len(h) == 64
    with pytest.raises(TypeError):
        hash_interactions([("u1", 3)])


# ---------------------------------------------------------------- signing and verification


def test_signed_certificate_verifies(tmp_path, key, body, artifacts):
    """Sign, write, read back: verification passes, artifacts included, digest is stable."""
    cert = sign_certificate(body, key)
    assert "signature" not in body  # the body is not mutated
    assert cert["signature"]["algorithm"] == "Ed25519"
    assert cert["signature"]["key_id"] == key_id(key)
    path = tmp_path / "certs" / "cert-0001.json"
    file_hash = write_certificate(path, cert)
    assert file_hash == sha256_hex(path.read_bytes())
    assert path.read_bytes().endswith(b"\n")
    if os.name == "posix":
        assert _mode(path) == 0o644
    loaded = read_certificate(path, strict=True)
    result = verify_certificate(loaded, key.public_key(), artifacts_root=artifacts)
    assert result.ok, result.problems
    assert result.problems == ()
    assert result.key_id == key_id(key)
    assert result.digest == certificate_digest(cert) == certificate_digest(body)
    with pytest.raises(ValueError, match="signature"):
        sign_certificate(cert, key)


def test_one_byte_change_anywhere_in_the_file_is_detected(tmp_path, key, body):
    """Changing any single byte of the written file makes it unreadable or not verified."""
    path = tmp_path / "cert.json"
    write_certificate(path, sign_certificate(body, key))
    original = path.read_bytes()
    public = key.public_key()
    tampered = tmp_path / "tampered.json"
    for pos in range(len(original)):
        for new in (original[pos] ^ 0x01, ord("x") if original[pos] != ord("x") else ord("y")):
            data = bytearray(original)
            data[pos] = new
            tampered.write_bytes(bytes(data))
            try:
                cert = read_certificate(tampered)
            except ValueError as exc:
                assert str(tampered) in str(exc)
                continue
            result = verify_certificate(cert, public)
            assert not result.ok, f"byte {pos} changed to {new!r} went unnoticed"
            assert result.problems


def test_whitespace_edits_are_caught_in_strict_mode(tmp_path, key, body):
    """Layout-only edits keep the signed content valid; strict reading still refuses them."""
    path = tmp_path / "cert.json"
    write_certificate(path, sign_certificate(body, key))
    path.write_bytes(path.read_bytes()[:-1] + b" ")
    assert verify_certificate(read_certificate(path), key.public_key()).ok
    with pytest.raises(ValueError, match="canonical"):
        read_certificate(path, strict=True)


def test_content_edit_is_reported_as_altered(key, body):
    """Changing a value after signing is reported as an altered certificate."""
    cert = sign_certificate(body, key)
    cert["verification"]["passed"] = False
    result = verify_certificate(cert, key.public_key())
    assert not result.ok
    assert result.problems == (
        "signature does not match the content: the certificate was altered after signing",
    )


def test_wrong_public_key_is_reported_by_key_id(tmp_path, key, body):
    """Verifying with another key names both key ids."""
    other = load_or_create_signing_key(tmp_path / "other.pem")
    result = verify_certificate(sign_certificate(body, key), other.public_key())
    assert not result.ok
    assert result.problems == (
        f"signed by key {key_id(key)}, but the public key given is {key_id(other)}",
    )
    assert result.key_id == key_id(key)


def test_missing_or_malformed_signature_is_reported(key, body):
    """An unsigned document, a bad algorithm or a non-canonical base64 value are problems."""
    public = key.public_key()
    result = verify_certificate(body, public)
    assert not result.ok and "no 'signature' block" in result.problems[0]

    cert = sign_certificate(body, key)
    bad_alg = copy.deepcopy(cert)
    bad_alg["signature"]["algorithm"] = "RSA"
    assert any("algorithm" in p for p in verify_certificate(bad_alg, public).problems)

    value = cert["signature"]["value"]
    assert value.endswith("==")  # 64 bytes: the last data character carries 4 unused bits
    last = value[-3]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sibling = alphabet[alphabet.index(last) ^ 1]  # same 2 data bits, different padding bits
    odd = copy.deepcopy(cert)
    odd["signature"]["value"] = value[:-3] + sibling + "=="
    result = verify_certificate(odd, public)
    assert not result.ok and any("canonical base64" in p for p in result.problems)

    assert verify_certificate(["not", "a", "dict"], public).ok is False  # type: ignore[arg-type]


def test_missing_required_fields_are_reported(key, body):
    """A signed certificate without required fields fails, naming the missing fields."""
    partial = {k: v for k, v in body.items() if k not in ("policy", "timings")}
    result = verify_certificate(sign_certificate(partial, key), key.public_key())
    assert not result.ok
    assert result.problems == ("required fields missing: policy, timings",)
    assert set(REQUIRED_FIELDS) <= set(body)


def test_wrong_schema_is_reported(key, body):
    """A certificate of another schema version is not accepted as this one."""
    result = verify_certificate(sign_certificate({**body, "schema": "x/9"}, key), key.public_key())
    assert not result.ok and "schema" in result.problems[0]


def test_artifact_mismatch_and_missing_artifact_are_reported(key, body, artifacts):
    """A changed artifact file and a deleted one are each reported by path."""
    cert = sign_certificate(body, key)
    (artifacts / "runs" / "t1" / "model.pt").write_bytes(b"other weights")
    (artifacts / "runs" / "t1" / "report.json").unlink()
    result = verify_certificate(cert, key.public_key(), artifacts_root=artifacts)
    assert not result.ok
    assert result.problems == (
        "artifact runs/t1/model.pt: sha256 mismatch",
        "artifact runs/t1/report.json: missing",
    )
    assert verify_certificate(cert, key.public_key()).ok  # artifacts are checked only on request


def test_artifact_paths_cannot_escape_the_root(tmp_path, key, body, artifacts):
    """An artifact path with '..' or an absolute path is refused, not read."""
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x")
    body["artifacts"] = [
        {"path": "../outside.bin", "sha256": sha256_hex(b"x")},
        {"path": str(outside), "sha256": sha256_hex(b"x")},
    ]
    result = verify_certificate(
        sign_certificate(body, key), key.public_key(), artifacts_root=artifacts
    )
    assert len(result.problems) == 2
    assert all("stay under the root" in p for p in result.problems)


def test_removed_interactions_hash_must_match_listed_pairs(key, body):
    """A stated hash that does not match the listed pseudonymised pairs is reported."""
    body["removed_interactions"]["hash"] = hash_interactions([("ps_other", "i1")])
    result = verify_certificate(sign_certificate(body, key), key.public_key())
    assert not result.ok
    assert len(result.problems) == 1 and "removed_interactions.hash" in result.problems[0]


def test_read_certificate_names_the_file_when_not_json(tmp_path):
    """Broken JSON, duplicate keys or a non-object give ValueError naming the file."""
    for name, text in [("a.json", "{not json"), ("b.json", '{"a":1,"a":2}'), ("c.json", "[1]")]:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ValueError, match=name):
            read_certificate(path)


def test_module_does_not_import_heavy_dependencies():
    """Importing certificates loads no torch, numpy, prefect or streamlit: the dashboard uses it."""
    code = (
        "import sys, unlearnrec.records.certificates;"
        "bad=[m for m in ('torch','numpy','prefect','streamlit','sqlmodel','great_expectations')"
        " if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

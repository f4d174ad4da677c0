"""Certificates of erasure: canonical JSON documents signed with Ed25519.

A certificate states which personal data was removed from which model, how, and how the removal
was checked. It is signed so that anyone holding the platform's public key can check, offline and
without trusting us, that the document is the one we issued and was not altered afterwards. The
signature covers the canonical JSON of the whole document minus its ``signature`` block, so the
same content always gives the same bytes, whatever the key order or float formatting of the
writer.

Subjects never appear in clear: ``pseudonymise`` turns an id into a keyed hash that is stable
for one platform secret (so tickets about the same person can be linked by us) but cannot be
reversed or recomputed by someone without the secret.

Only the standard library and ``cryptography`` are imported here: the dashboard and the ledger
import this module and must start fast (no torch, numpy, prefect, streamlit, ...).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from unlearnrec.files import atomic_write_bytes

if TYPE_CHECKING:
    from unlearnrec.records.verification import VerificationReport

SCHEMA = "unlearnrec.certificate/1"
ALGORITHM = "Ed25519"

# Top-level fields every certificate of schema ``SCHEMA`` must carry.
REQUIRED_FIELDS: tuple[str, ...] = (
    "schema",
    "certificate_id",
    "issued_at",
    "tickets",
    "subjects",
    "removed_interactions",
    "dataset",
    "model",
    "method",
    "verification",
    "policy",
    "audit",
    "timings",
)

_SECRET_BYTES = 32
_SIGNATURE_BYTES = 64
_PRIVATE_MODE = 0o600
_PUBLIC_MODE = 0o644


class KeyPermissionError(PermissionError):
    """A secret file (signing key, pseudonym secret) is readable by group or others."""


# --------------------------------------------------------------------------------------------
# Private files (signing key, pseudonym secret)
# --------------------------------------------------------------------------------------------


def tier_of(method: str, report: VerificationReport | None) -> str:
    """How the certified model forgot: ``exact`` (a partition method's shard retrain, proved
    from the manifests), ``retrain`` (a model trained without the data: the retrain method or
    the fallback) or ``approximate`` (an unlearning method, verified by the figures)."""
    if report is not None and report.tier == "exact" and (report.exact or {}).get("passed"):
        return "exact"
    if method == "retrain" or (report is not None and report.fallback == "retrain"):
        return "retrain"
    return "approximate"


def _make_private_dirs(folder: Path) -> None:
    """Create the missing folders down to ``folder`` with mode 0700.

    Only folders created here are restricted: an existing parent (the project folder, /tmp) keeps
    its permissions, since other people may legitimately need it.
    """
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)  # mkdir's mode is masked by the umask


def _check_private(path: Path) -> None:
    """Refuse a secret file that group or others can read or write.

    A leaked signing key lets anyone forge certificates; a leaked pseudonym secret lets anyone
    re-identify subjects. Failing loudly beats silently using a compromised file.
    """
    if os.name != "posix":  # mode bits mean nothing elsewhere
        return
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise KeyPermissionError(
            f"{path} has permissions {mode:04o}: group or others can access this secret; "
            f"restrict it with `chmod 600 {path}` (and consider it compromised if it was shared)"
        )


def _create_private_file(path: Path, data: bytes) -> bool:
    """Write a new 0600 file at ``path`` unless one exists; True if this call created it.

    The bytes go to a temporary name first (atomically, full content), then are hard-linked into
    place, which fails if ``path`` exists: two processes starting at once both end up using the
    first one's key, instead of one of them signing with a key that was overwritten on disk.
    """
    _make_private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.new")
    atomic_write_bytes(tmp, data, mode=_PRIVATE_MODE)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # file system without hard links: fall back to a plain (racy) rename
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the platform's Ed25519 signing key, generating it (PKCS8 PEM, 0600) on first use.

    The key is created lazily so a fresh deployment works without a setup step, and stored
    unencrypted because the flows sign unattended; the file permissions are the protection, so a
    key file readable by others is refused (``KeyPermissionError``).
    """
    path = Path(path)
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        if _create_private_file(path, pem):
            return key
    _check_private(path)
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path}: expected an Ed25519 key, found {type(loaded).__name__}")
    return loaded


PublicOrPrivate = Ed25519PrivateKey | Ed25519PublicKey


def _as_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> Ed25519PublicKey:
    return key.public_key() if isinstance(key, Ed25519PrivateKey) else key


def raw_public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw 32-byte public key as hex: what the ledger records to pin a key."""
    return (
        _as_public(key)
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )


def load_signing_key_if_present(path: Path) -> Ed25519PrivateKey | None:
    """The signing key at ``path`` if this process can read it; None if it is absent or not
    readable (a verifier on another machine, another user). Never creates one."""
    path = Path(path)
    try:
        if not path.is_file():
            return None
        return load_or_create_signing_key(path)
    except PermissionError as exc:
        if isinstance(exc, KeyPermissionError):
            raise
        return None


def check_public_key(
    public_key: Ed25519PublicKey,
    recorded: dict[str, str],
    signing_key: Ed25519PrivateKey | None = None,
) -> list[str]:
    """Problems with trusting ``public_key``: it must be a key the ledger ``recorded`` (key id
    -> raw public key hex, as ``unlearnrec.ledger.keys.recorded_keys`` returns), and, where the
    platform's ``signing_key`` is at hand, its public half. A swapped public key file fails
    both; the key id alone is not enough (16 hex digits of a hash), so the raw key is compared
    where the ledger holds it."""
    kid = key_id(public_key)
    problems: list[str] = []
    if not recorded:
        problems.append(f"the ledger records no signing key, so public key {kid} cannot be trusted")
    elif kid not in recorded:
        problems.append(
            f"public key {kid} is not a signing key the ledger recorded "
            f"({', '.join(sorted(recorded))}): the public key file was replaced"
        )
    elif recorded[kid] and recorded[kid] != raw_public_key_hex(public_key):
        problems.append(f"public key {kid} differs from the key the ledger recorded under that id")
    if signing_key is not None and key_id(signing_key) != kid:
        problems.append(
            f"public key {kid} does not match the platform's signing key {key_id(signing_key)}"
        )
    return problems


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The public half as SubjectPublicKeyInfo PEM: what a verifier needs, and nothing secret."""
    return _as_public(key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(path_or_pem: str | Path | bytes) -> Ed25519PublicKey:
    """Read a public key from PEM bytes/text or from a PEM file.

    Accepting both lets the CLI take a file and the dashboard pass a key it already holds.
    """
    if isinstance(path_or_pem, bytes):
        pem, where = path_or_pem, "public key"
    elif isinstance(path_or_pem, str) and path_or_pem.lstrip().startswith("-----BEGIN"):
        pem, where = path_or_pem.encode("ascii"), "public key"
    else:
        where = str(path_or_pem)
        pem = Path(path_or_pem).read_bytes()
    try:
        loaded = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ValueError(f"{where}: not a PEM public key ({exc})") from exc
    if not isinstance(loaded, Ed25519PublicKey):
        raise ValueError(f"{where}: expected an Ed25519 key, found {type(loaded).__name__}")
    return loaded


def key_id(public_key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Short fingerprint of a key: first 16 hex chars of sha256 of the raw 32-byte public key.

    Certificates name their key by this id so a verifier holding several keys (after rotation)
    can tell which one to use, and a mismatch can be reported in words.
    """
    raw = _as_public(public_key).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def export_public_key(private_key: Ed25519PrivateKey, path: Path) -> str:
    """Write the public PEM (0644), the file handed to verifiers; returns its key id."""
    atomic_write_bytes(Path(path), public_key_pem(private_key), mode=_PUBLIC_MODE)
    return key_id(private_key)


# --------------------------------------------------------------------------------------------
# Pseudonyms
# --------------------------------------------------------------------------------------------


def load_or_create_secret(path: Path) -> bytes:
    """Load the 32-byte pseudonym secret (hex text, 0600), generating it on first use.

    Losing it only breaks linking of old pseudonyms to new ones; leaking it allows
    re-identification, hence the same permission check as the signing key.
    """
    path = Path(path)
    if not path.exists():
        secret = secrets.token_bytes(_SECRET_BYTES)
        if _create_private_file(path, secret.hex().encode("ascii") + b"\n"):
            return secret
    _check_private(path)
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"{path}: pseudonym secret is not hex text") from exc
    if len(secret) != _SECRET_BYTES:
        raise ValueError(f"{path}: pseudonym secret has {len(secret)} bytes, expected 32")
    return secret


def pseudonymise(subject: str, secret: bytes) -> str:
    """Keyed hash of a subject id: ``"ps_"`` + first 32 hex chars of HMAC-SHA256(secret, id).

    A plain hash of a user id can be reversed by hashing every candidate id; the keyed hash
    cannot without the secret, yet stays stable so one person's tickets can be linked.
    """
    if not secret:
        raise ValueError("pseudonym secret is empty")
    return "ps_" + hmac.new(secret, subject.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


# --------------------------------------------------------------------------------------------
# Canonical JSON and hashes
# --------------------------------------------------------------------------------------------


def _normalise(obj: Any, where: str) -> Any:
    """Copy ``obj`` into plain JSON types, floats rounded to 12 significant digits."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{where}: {obj!r} is not allowed in a certificate (not JSON)")
        # 12 significant digits absorb last-bit differences between platforms/BLAS; applying it
        # twice gives the same float, so re-canonicalising a parsed certificate is stable.
        x = float(f"{obj:.12g}")
        return 0.0 if x == 0 else x  # -0.0 and 0.0 are the same number: one spelling
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: key {k!r} is {type(k).__name__}, JSON keys are str")
            out[k] = _normalise(v, f"{where}.{k}")
        return out
    if isinstance(obj, list | tuple):
        return [_normalise(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where}: {type(obj).__name__} is not a JSON type")


def canonical_json(obj: Any) -> bytes:
    """The one byte string for a JSON value: sorted keys, no spaces, UTF-8, normalised floats.

    Signatures and digests are computed over these bytes, so two writers that build the same
    content in a different order, or with floats that differ in the last bit, agree. Non-JSON
    values raise ``TypeError`` (NaN/inf ``ValueError``) naming where they sit, e.g. ``$.model.lr``.
    """
    return json.dumps(
        _normalise(obj, "$"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def hash_interactions(pairs: Iterable[tuple[str, str]]) -> str:
    """Order-independent hash of (user, item) id pairs: sha256 of the canonical sorted list.

    Lets a certificate commit to exactly which interactions were removed without listing them.
    Ids must be strings (``1`` and ``"1"`` would otherwise hash alike by accident); duplicates
    count, so the hash is over a multiset.
    """
    rows: list[list[str]] = []
    for pair in pairs:
        user, item = pair
        if not isinstance(user, str) or not isinstance(item, str):
            raise TypeError(f"interaction {pair!r}: user and item ids must be str")
        rows.append([user, item])
    rows.sort()
    return sha256_hex(canonical_json(rows))


# --------------------------------------------------------------------------------------------
# Signing and verifying
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of checking a certificate; ``problems`` are sentences for a human auditor."""

    ok: bool
    problems: tuple[str, ...]
    key_id: str | None  # the key the certificate says signed it (None if unreadable)
    digest: str | None  # certificate_digest (None if the content cannot be canonicalised)


def _body(cert: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cert.items() if k != "signature"}


def sign_certificate(body: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Return a copy of ``body`` with a ``signature`` block over ``canonical_json(body)``.

    The body is signed as a whole so no field (tickets, metrics, artifact hashes) can be changed
    without the signature failing.
    """
    if not isinstance(body, dict):
        raise TypeError(f"certificate body must be a dict, got {type(body).__name__}")
    if "signature" in body:
        raise ValueError("certificate body already has a 'signature' field; sign the body only")
    value = key.sign(canonical_json(body))
    return {
        **body,
        "signature": {
            "algorithm": ALGORITHM,
            "key_id": key_id(key),
            "value": base64.b64encode(value).decode("ascii"),
        },
    }


def certificate_digest(cert: dict[str, Any]) -> str:
    """sha256 hex of the canonical content without the signature: the id a ledger row stores.

    Same value for the unsigned body and the signed certificate.
    """
    return sha256_hex(canonical_json(_body(cert)))


def _check_signature(
    cert: dict[str, Any], public_key: Ed25519PublicKey, body_bytes: bytes | None
) -> tuple[list[str], str | None]:
    problems: list[str] = []
    block = cert.get("signature")
    if block is None:
        return ["the certificate has no 'signature' block: it was never signed"], None
    if not isinstance(block, dict):
        return ["the 'signature' block is not an object"], None
    claimed = block.get("key_id")
    claimed_id = claimed if isinstance(claimed, str) else None
    if block.get("algorithm") != ALGORITHM:
        problems.append(
            f"signature algorithm is {block.get('algorithm')!r}, only {ALGORITHM!r} is accepted"
        )
    given_id = key_id(public_key)
    if claimed_id is None:
        problems.append("the 'signature' block has no key_id")
    elif claimed_id != given_id:
        problems.append(f"signed by key {claimed_id}, but the public key given is {given_id}")
    raw = block.get("value")
    signature: bytes | None = None
    if not isinstance(raw, str):
        problems.append("the 'signature' block has no value")
    else:
        try:
            signature = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            problems.append("signature value is not valid base64")
        else:
            # b64decode ignores the unused bits of the last character: require the one
            # spelling we write, so no character of the file can change unnoticed.
            if base64.b64encode(signature).decode("ascii") != raw:
                problems.append("signature value is not in canonical base64 form")
            if len(signature) != _SIGNATURE_BYTES:
                problems.append(
                    f"signature value has {len(signature)} bytes, an Ed25519 signature has 64"
                )
                signature = None
    if problems or signature is None or body_bytes is None:
        return problems, claimed_id  # a wrong key would also fail below: one reason is enough
    try:
        public_key.verify(signature, body_bytes)
    except InvalidSignature:
        problems.append(
            "signature does not match the content: the certificate was altered after signing"
        )
    return problems, claimed_id


def _check_removed_interactions(cert: dict[str, Any]) -> list[str]:
    removed = cert.get("removed_interactions")
    if not isinstance(removed, dict) or "pairs_pseudonymised" not in removed:
        return []
    pairs = removed["pairs_pseudonymised"]
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
    ):
        return ["removed_interactions.pairs_pseudonymised is not a list of [user, item] strings"]
    expected = hash_interactions((u, i) for u, i in pairs)
    if removed.get("hash") != expected:
        return [
            "removed_interactions.hash does not match the listed pairs "
            f"(stated {removed.get('hash')!r}, computed {expected})"
        ]
    return []


def _check_artifacts(cert: dict[str, Any], root: Path) -> list[str]:
    artifacts = cert.get("artifacts")
    if artifacts is None:
        return []
    if not isinstance(artifacts, list):
        return ["'artifacts' is not a list"]
    problems: list[str] = []
    for n, entry in enumerate(artifacts):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("path"), str)
            and isinstance(entry.get("sha256"), str)
        ):
            problems.append(f"artifact #{n}: expected {{'path': str, 'sha256': str}}")
            continue
        rel = entry["path"]
        parts = PurePosixPath(rel).parts
        # Lexical check (no resolve): DVC may symlink artifacts into its cache, which is fine.
        if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
            problems.append(f"artifact {rel}: path must be relative and stay under the root")
            continue
        target = root.joinpath(*parts)
        if not target.is_file():
            problems.append(f"artifact {rel}: missing")
            continue
        h = hashlib.sha256()
        with open(target, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != entry["sha256"]:
            problems.append(f"artifact {rel}: sha256 mismatch")
    return problems


def verify_certificate(
    cert: dict[str, Any],
    public_key: Ed25519PublicKey,
    *,
    artifacts_root: Path | None = None,
) -> VerificationResult:
    """Check a certificate and say, in sentences, everything that is wrong with it.

    Never raises for a malformed or tampered document: an auditor wants the full list of
    problems, and a tool that crashes on a forged file is worse than one that reports it.
    Checks: the signature block, the key id, the signature over the canonical body, the
    required fields and schema, the removed-interactions hash, and (with ``artifacts_root``)
    the sha256 of every listed artifact file.
    """
    if not isinstance(cert, dict):
        return VerificationResult(False, ("the certificate is not a JSON object",), None, None)
    problems: list[str] = []
    try:
        body_bytes: bytes | None = canonical_json(_body(cert))
    except (TypeError, ValueError) as exc:
        body_bytes = None
        problems.append(f"the content cannot be put in canonical form: {exc}")
    digest = sha256_hex(body_bytes) if body_bytes is not None else None

    sig_problems, claimed_id = _check_signature(cert, public_key, body_bytes)
    problems += sig_problems

    missing = [f for f in REQUIRED_FIELDS if f not in cert]
    if missing:
        problems.append("required fields missing: " + ", ".join(missing))
    if "schema" in cert and cert["schema"] != SCHEMA:
        problems.append(f"schema is {cert['schema']!r}, this verifier reads {SCHEMA!r}")

    problems += _check_removed_interactions(cert)
    if artifacts_root is not None:
        problems += _check_artifacts(cert, Path(artifacts_root))
    return VerificationResult(not problems, tuple(problems), claimed_id, digest)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_certificate(path: Path, *, strict: bool = False) -> dict[str, Any]:
    """Parse a certificate file; ``ValueError`` naming the file if it is not a JSON object.

    Duplicate keys and NaN/Infinity are refused (different parsers would read them
    differently). With ``strict`` the file must also be byte-for-byte the canonical form
    ``write_certificate`` produces, so even whitespace edits outside the content are caught.
    """
    path = Path(path)
    return parse_certificate(path.read_bytes(), path, strict=strict)


def parse_certificate(raw: bytes, path: Path | str, *, strict: bool = False) -> dict[str, Any]:
    """``read_certificate`` on bytes already read (``path`` names them in errors)."""
    try:
        obj = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
        )
    except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{path}: not a valid JSON certificate ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: a certificate is a JSON object, found {type(obj).__name__}")
    if strict and raw != canonical_json(obj) + b"\n":
        raise ValueError(f"{path}: not in canonical form (the file was edited after writing)")
    return obj


def write_certificate(path: Path, cert: dict[str, Any]) -> str:
    """Write ``cert`` as canonical JSON + newline, atomically, 0644; return the file's sha256.

    Atomic so a crash never leaves half a certificate; world-readable because certificates
    hold only pseudonyms and are meant to be handed out.
    """
    data = canonical_json(cert) + b"\n"
    atomic_write_bytes(Path(path), data, mode=_PUBLIC_MODE)
    return sha256_hex(data)

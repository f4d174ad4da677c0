"""Signing keys pinned in the ledger: each key that signs certificates is recorded once, by a
``key.registered`` audit event holding its id and raw public key, before its first signature.

A verifier then trusts a public key only if the ledger recorded it (and, where the private key
is at hand, only if it is that key's public half): replacing ``public_key.pem`` with another key
and signing a forged certificate with it no longer verifies. The first key is registered on first
use; a later, different key is refused for signing until an operator registers it
(``unlearnrec certificate register-key``, see docs/workflow.md, "Key rotation").
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlmodel import Session, col, select

from unlearnrec.files import atomic_write_bytes
from unlearnrec.ledger.audit import Anchor, append_event, last_event
from unlearnrec.ledger.models import AuditEvent, Certificate
from unlearnrec.records import certificates as certs

ACTION = "key.registered"


class KeyNotRegisteredError(RuntimeError):
    """The signing key in use is not one the ledger recorded."""


def _registered(session: Session) -> dict[str, str]:
    query = select(AuditEvent).where(AuditEvent.action == ACTION)
    query = query.order_by(col(AuditEvent.position))
    return {ev.entity_id: str(ev.data.get("public_key", "")) for ev in session.exec(query)}


def recorded_keys(session: Session) -> dict[str, str]:
    """key id -> raw public key (hex) of every signing key the ledger recorded. A ledger from
    before key registration has none: the key ids its certificate rows name are used (with an
    empty public key: only the id can be compared)."""
    keys = _registered(session)
    if not keys:
        for kid in session.exec(select(Certificate.key_id).distinct()):
            keys[kid] = ""
    return keys


def register_key(session: Session, key: certs.PublicOrPrivate, *, actor: str) -> bool:
    """Record ``key`` (its public half) in the ledger; False if it was recorded already."""
    kid = certs.key_id(key)
    if kid in _registered(session):
        return False
    append_event(
        session,
        actor=actor,
        action=ACTION,
        entity="key",
        entity_id=kid,
        data={"key_id": kid, "public_key": certs.raw_public_key_hex(key), "algorithm": "Ed25519"},
    )
    return True


def require_registered(session: Session, key: certs.PublicOrPrivate, *, actor: str) -> str:
    """Before signing with ``key``: register it if the ledger records no key yet (first use),
    refuse it if the ledger records other keys only. Returns its key id."""
    kid = certs.key_id(key)
    recorded = recorded_keys(session)
    if kid in recorded:
        if not recorded[kid]:  # known from certificate rows only: record the public key too
            register_key(session, key, actor=actor)
        return kid
    if recorded:
        raise KeyNotRegisteredError(
            f"signing key {kid} is not registered in the ledger (registered: "
            f"{', '.join(sorted(recorded))}); if this is a planned rotation, run "
            "`unlearnrec certificate register-key`, otherwise treat the key as compromised"
        )
    register_key(session, key, actor=actor)
    return kid


def _public_from_hex(raw: str) -> Ed25519PublicKey | None:
    if not raw:
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw))
    except ValueError:
        return None


def verify_keys(
    session: Session, certificates_dir: Path, public_key_path: Path, signing_key_path: Path
) -> list[str]:
    """Problems with the keys and certificate files, for ``audit verify``: the published public
    key must be recorded in the ledger and match the signing key (where readable); every
    certificate row must name a recorded key; every certificate file must be signed by a
    recorded key and match the certificate the ledger recorded under its id (a file the
    ledger does not back is an orphan or a forgery)."""
    problems: list[str] = []
    recorded = recorded_keys(session)
    signing: Ed25519PrivateKey | None = None
    try:
        signing = certs.load_signing_key_if_present(signing_key_path)
    except (OSError, ValueError) as exc:
        problems.append(f"signing key: {exc}")
    public: Ed25519PublicKey | None = None
    if public_key_path.exists():
        try:
            public = certs.load_public_key(public_key_path)
        except (OSError, ValueError) as exc:
            problems.append(str(exc))
        else:
            problems += [
                f"{public_key_path.name}: {p}"
                for p in certs.check_public_key(public, recorded, signing)
            ]
    rows = {row.certificate_id: row for row in session.exec(select(Certificate))}
    for row in rows.values():
        if row.key_id not in recorded:
            problems.append(
                f"certificate {row.certificate_id}: the ledger says key {row.key_id} signed it, "
                "a key it never registered"
            )
    for path in sorted(Path(certificates_dir).glob("*.json")):
        name = f"{path.name!a}"[1:-1][:80]
        try:
            cert = certs.read_certificate(path)
        except (OSError, ValueError):
            continue  # reported by certificate_anchors
        if not isinstance(cert, dict):
            continue
        block = cert.get("signature")
        kid = block.get("key_id") if isinstance(block, dict) else None
        key: Ed25519PublicKey | None = None
        if isinstance(kid, str) and kid in recorded:
            if recorded[kid]:
                key = _public_from_hex(recorded[kid])
            elif public is not None and certs.key_id(public) == kid:
                key = public
        if key is None:
            problems.append(
                f"certificate {name}: signed by key {str(kid)[:40]}, which the ledger never "
                "registered"
            )
        else:
            result = certs.verify_certificate(cert, key)
            problems += [f"certificate {name}: {p}" for p in result.problems]
        recorded_row = rows.get(str(cert.get("certificate_id")))
        if recorded_row is None:
            problems.append(
                f"certificate {name}: not recorded in the ledger (an orphan or forgery)"
            )
            continue
        try:
            digest = certs.certificate_digest(cert)
        except (TypeError, ValueError):
            digest = ""
        if digest != recorded_row.digest:
            problems.append(
                f"certificate {name}: differs from the certificate {recorded_row.certificate_id} "
                "the ledger recorded"
            )
    return problems


# -- the signed head file -----------------------------------------------------------------------

HEAD_SCHEMA = "unlearnrec.audit-head/1"


def write_signed_head(path: Path, session: Session, key: Ed25519PrivateKey) -> Anchor | None:
    """Write ``path``: the chain's last (position, hash), signed with the platform key. Kept
    outside the database and rewritten after every commit that appends events, it lets
    ``audit verify`` see a tail cut off since (the chain alone still links up)."""
    ev = last_event(session)
    if ev is None:
        return None
    body = {
        "schema": HEAD_SCHEMA,
        "position": ev.position,
        "hash": ev.hash,
        "at": ev.at.isoformat(timespec="microseconds"),
    }
    signed = {
        **body,
        "key_id": certs.key_id(key),
        "signature": base64.b64encode(key.sign(certs.canonical_json(body))).decode("ascii"),
    }
    atomic_write_bytes(path, certs.canonical_json(signed) + b"\n", mode=0o644)
    return Anchor(ev.position, ev.hash, f"signed head file {path.name}")


def read_signed_head(path: Path, recorded: dict[str, str]) -> tuple[Anchor | None, list[str]]:
    """The anchor in the signed head file at ``path`` if its signature verifies with a key the
    ledger ``recorded``; (None, []) when there is no such file; else (None, problems)."""
    if not path.exists():
        return None, []
    name = f"signed head file {path.name}"
    try:
        doc = json.loads(path.read_bytes())
        body = {k: doc[k] for k in ("schema", "position", "hash", "at")}
        kid, signature = str(doc["key_id"]), base64.b64decode(doc["signature"], validate=True)
        position, digest = int(body["position"]), str(body["hash"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, [f"{name}: unreadable ({type(exc).__name__})"]
    key = _public_from_hex(recorded.get(kid, ""))
    if key is None:
        return None, [f"{name}: signed by key {kid[:40]}, which the ledger never registered"]
    try:
        key.verify(signature, certs.canonical_json(body))
    except InvalidSignature:
        return None, [f"{name}: signature does not match its content (the file was altered)"]
    return Anchor(position, digest, name), []

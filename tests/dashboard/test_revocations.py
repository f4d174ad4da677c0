"""The certificates page lists the certificates the platform revoked (signed, never recorded)."""

from __future__ import annotations

import shutil

from tests.dashboard.conftest import frame_with
from unlearnrec.ledger import append_event, make_engine, session_scope


def test_revoked_certificates_are_listed(app_env, open_app, seeded, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(seeded.home, home)
    engine = make_engine(f"sqlite:///{home / 'var' / 'ledger.sqlite'}")
    with session_scope(engine) as session:
        append_event(
            session, actor="flow:process", action="certificate.revoked", entity="certificate",
            entity_id="cert-r7-t9-provisional",
            data={"certificate_id": "cert-r7-t9-provisional", "sha256": "ab" * 32,
                  "reason": "signed but never recorded in the ledger"},
        )  # fmt: skip
    engine.dispose()
    app_env(f"sqlite:///{home / 'var' / 'ledger.sqlite'}", home=home)
    at = open_app("certificates")
    assert "Revoked certificates" in [s.value for s in at.subheader]
    revoked = frame_with(at, "reason")
    assert revoked["certificate"].tolist() == ["cert-r7-t9-provisional"]
    assert revoked["file sha256"].tolist() == ["ab" * 8]


def test_without_revocations_the_section_is_absent(open_app):
    at = open_app("certificates")
    assert "Revoked certificates" not in [s.value for s in at.subheader]

"""Everything a workflow step needs, opened once: settings, ledger engine, DVC store, policy,
and the local secrets (signing key, pseudonym secret)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from unlearnrec.compliance.store import DvcStore
from unlearnrec.ledger import init_db, make_engine
from unlearnrec.ledger.db import on_audit_commit, session_scope
from unlearnrec.ledger.keys import require_registered, write_signed_head
from unlearnrec.records import certificates as certs
from unlearnrec.records.policy import Policy, load_policy
from unlearnrec.records.settings import Settings, get_settings

log = logging.getLogger("unlearnrec")


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    store: DvcStore
    policy: Policy
    actor: str = "unlearnrec"
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, settings: Settings | None = None, *, actor: str = "unlearnrec") -> Platform:
        settings = settings or get_settings()
        engine = make_engine(settings.database_url)
        init_db(engine)
        store = DvcStore(settings.var / "store", settings.var / "dvc-remote").ensure()
        platform = cls(settings, engine, store, load_policy(settings.policy), actor=actor)
        on_audit_commit(engine, platform.write_head)
        return platform

    @property
    def head_file(self) -> Path:
        return self.settings.var / "audit-head.json"

    def write_head(self) -> None:
        """Sign the audit chain's head into ``var/audit-head.json`` (after each commit that
        appended events; see ``unlearnrec.ledger.keys.write_signed_head``). The key signing it
        must be pinned: the first one is registered here if no certificate pinned it yet, and
        an unregistered key raises (the hook logs it, the head file stays as it was)."""
        with session_scope(self.engine) as session:
            require_registered(session, self.signing_key, actor=self.actor)
        with Session(self.engine) as session:
            write_signed_head(self.head_file, session, self.signing_key)

    @cached_property
    def signing_key(self):
        key = certs.load_or_create_signing_key(self.settings.signing_key)
        public = self.settings.public_key
        if not public.exists():
            certs.export_public_key(key, public)
        return key

    @cached_property
    def pseudonym_secret(self) -> bytes:
        return certs.load_or_create_secret(self.settings.pseudonym_secret)

    def pseudonymise(self, subject: str) -> str:
        return certs.pseudonymise(subject, self.pseudonym_secret)

    def path(self, *parts: str) -> Path:
        p = self.settings.var.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

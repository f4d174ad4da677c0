"""Everything a workflow step needs, opened once: settings, ledger engine, DVC store, policy,
and the local secrets (signing key, pseudonym secret)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import Engine

from unlearnrec import certificates as certs
from unlearnrec.ledger import init_db, make_engine
from unlearnrec.policy import Policy, load_policy
from unlearnrec.settings import Settings, get_settings
from unlearnrec.store import DvcStore

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
        return cls(settings, engine, store, load_policy(settings.policy), actor=actor)

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

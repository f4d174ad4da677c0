"""Schema migrations: a ledger made by the oldest schema the project shipped upgrades in place,
data kept, on SQLite and PostgreSQL; new ledgers start at head; a ledger behind the code is
refused with the command to run (CLI: exit 1, one line), never a raw ``OperationalError``."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from tests.postgres import PG_ENV, temporary_database
from unlearnrec.cli import main
from unlearnrec.ledger import Ticket, UnlearningRun, init_db, make_engine
from unlearnrec.ledger.db import (
    LedgerOutOfDate,
    check_db,
    new_revision,
    schema_status,
    upgrade_db,
)
from unlearnrec.ledger.migrations import HERE, head_revision
from unlearnrec.ledger.models import Lease

ROOT = Path(__file__).resolve().parents[3]


def _baseline():
    spec = importlib.util.spec_from_file_location(
        "baseline", HERE / "versions" / "0001_baseline.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _oldest_ledger(engine: Engine) -> None:
    """The tables the first release's ``create_all`` made (the baseline's raw DDL), no version
    table, and a ticket, a run and an audit event in them (the old columns only)."""
    with engine.begin() as conn:
        for statement in _baseline().statements(engine.dialect.name):
            conn.exec_driver_sql(statement)
        now = datetime(2026, 11, 23, 12, tzinfo=UTC)
        conn.execute(
            text(
                "INSERT INTO unlearningrun (batch_key, attempt, status, stage, method, params, "
                "device, policy_id, policy_version, policy_sha256, ticket_ids, removed_hash, "
                "removed_count, verification, timings, started_at) VALUES ('k1', 1, 'succeeded', "
                "'certified', 'unlearnrec', '{}', 'cpu', 'gdpr-default', 1, '', '[1]', 'h', 3, "
                "'{}', '{}', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO ticket (external_id, kind, subject, subject_pseudonym, items, "
                "legal_basis, received_at, deadline_at, extension_days, status, source, "
                "policy_id, policy_version, run_id, removed_interactions, created_at, updated_at) "
                "VALUES ('T-OLD-1', 'user_items', NULL, 'p1', '[\"i7\"]', 'GDPR', :now, :due, 0, "
                "'certified', 'inbox/a.json', 'gdpr-default', 1, 1, 3, :now, :now)"
            ),
            {"now": now, "due": now + timedelta(days=30)},
        )
        conn.execute(
            text(
                "INSERT INTO auditevent (position, at, actor, action, entity, entity_id, data, "
                "prev_hash, hash) VALUES (1, :now, 'cli', 'ticket.received', 'ticket', "
                "'T-OLD-1', '{}', '', 'abc')"
            ),
            {"now": now},
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def blank(request, tmp_path) -> Iterator[Engine]:
    """An engine on an empty database."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
        yield engine
        engine.dispose()
        return
    if not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} is not set")
    with temporary_database("unlearnrec_migr") as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def _differences(engine: Engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, SQLModel.metadata)


def test_the_oldest_ledger_upgrades_in_place_with_its_data(blank):
    _oldest_ledger(blank)
    status = schema_status(blank)
    assert status["current"] == "0001" and not status["recorded"]
    assert status["pending"] == ["0002", "0003", "0004", "0005", "0006"]
    assert status["head"] == head_revision()
    with pytest.raises(LedgerOutOfDate, match="unlearnrec db upgrade"):
        init_db(blank)  # refused, not used half-way

    assert upgrade_db(blank) == ("0001", head_revision())
    status = schema_status(blank)
    assert status["current"] == head_revision() and status["recorded"] and status["pending"] == []
    assert _differences(blank) == []  # the upgraded schema is the models' schema
    init_db(blank)
    check_db(blank)

    with Session(blank) as session:
        ticket = session.exec(select(Ticket).where(Ticket.external_id == "T-OLD-1")).one()
        assert ticket.status == "certified" and ticket.items == ["i7"] and ticket.run_id == 1
        assert ticket.removed_interactions == 3 and ticket.removed_hash == ""
        assert ticket.received_at == datetime(2026, 11, 23, 12, tzinfo=UTC)
        ticket.removed_hash = "f" * 64
        session.add(ticket)
        session.add(Lease(name="process", owner="host:1:x", acquired_at=1.0, expires_at=2.0))
        session.commit()
    with Session(blank) as session:
        assert session.exec(select(Ticket)).one().removed_hash == "f" * 64
        assert session.get(Lease, "process").owner == "host:1:x"
    columns = {c["name"]: c for c in inspect(blank).get_columns("modelversion")}
    assert "purged" in columns and columns["purged_at"]["nullable"]  # 0005
    with Session(blank) as session:  # 0006: the old run reads an empty purge check
        run = session.get(UnlearningRun, 1)
        assert run.purge_check == {} and run.removed_count == 3
        run.purge_check = {"suite": "purge", "success": True, "failed": []}
        session.add(run)
        session.commit()
    with Session(blank) as session:
        assert session.get(UnlearningRun, 1).purge_check["suite"] == "purge"
    if blank.dialect.name == "postgresql":  # 0002 named the run foreign keys
        fks = {fk["name"] for fk in inspect(blank).get_foreign_keys("datasetversion")}
        assert "fk_datasetversion_run" in fks and "datasetversion_run_id_fkey" not in fks
    assert upgrade_db(blank) == (head_revision(), head_revision())  # idempotent


def test_a_new_ledger_is_created_at_head_and_stamped(blank):
    init_db(blank)
    status = schema_status(blank)
    assert status["current"] == status["head"] == head_revision()
    assert status["recorded"] and status["pending"] == []
    assert _differences(blank) == []
    init_db(blank)  # again: nothing to do


def test_a_ledger_made_at_head_before_migrations_is_stamped(blank):
    SQLModel.metadata.create_all(blank)  # what init_db did before migrations existed
    assert schema_status(blank)["current"] == head_revision()
    assert not schema_status(blank)["recorded"]
    init_db(blank)
    assert schema_status(blank)["recorded"]


def test_a_ledger_half_opened_by_create_all_still_upgrades(blank):
    """A 0001 ledger that the leases' code opened before migrations: create_all added ``lease``
    but the ticket column is missing; the upgrade keeps the table and adds the column."""
    _oldest_ledger(blank)
    Lease.__table__.create(blank)
    assert schema_status(blank)["current"] in ("0001", "0002")
    upgrade_db(blank)
    assert _differences(blank) == []


def test_a_newer_ledger_is_refused(blank):
    init_db(blank)
    with blank.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(LedgerOutOfDate, match="newer than this version"):
        init_db(blank)
    with pytest.raises(LedgerOutOfDate, match="newer than this version"):
        upgrade_db(blank)


def test_cli_behind_ledger_says_what_to_run_then_db_upgrade_fixes_it(tmp_path, capsys):
    home = tmp_path / "home"
    (home / "var").mkdir(parents=True)
    shutil.copytree(ROOT / "policies", home / "policies")
    engine = make_engine(f"sqlite:///{home / 'var' / 'ledger.sqlite'}")
    _oldest_ledger(engine)
    engine.dispose()

    assert main(["tickets", "list", "--home", str(home)]) == 1
    err = capsys.readouterr().err
    assert "unlearnrec db upgrade" in err and "0001" in err
    assert "OperationalError" not in err and "Traceback" not in err

    assert main(["db", "current", "--json", "--home", str(home)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["current"] == "0001" and not status["up_to_date"]
    assert main(["db", "upgrade", "--home", str(home)]) == 0
    assert f"0001 -> {head_revision()}" in capsys.readouterr().out
    assert main(["db", "current", "--json", "--home", str(home)]) == 0
    assert json.loads(capsys.readouterr().out)["up_to_date"] is True
    assert main(["tickets", "list", "--json", "--home", str(home)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["external_id"] for r in rows] == ["T-OLD-1"]


def test_the_migrations_ship_with_the_package():
    """Every revision file and env.py sit inside the package (found through it, no alembic.ini),
    and the package data names the template alembic needs for new revisions."""
    names = {p.name for p in (HERE / "versions").glob("0*.py")}
    assert {"0001_baseline.py", "0004_lease.py"} <= names
    assert (HERE / "env.py").is_file() and (HERE / "script.py.mako").is_file()
    assert "script.py.mako" in (ROOT / "pyproject.toml").read_text()


def test_a_drafted_revision_is_empty_while_the_models_match_head(tmp_path, capsys):
    """``db revision`` drafts the next number after head; with the models unchanged its upgrade
    holds no operation (a model change without a revision would show up here)."""
    path = new_revision("nothing", write_to=tmp_path)
    text = path.read_text()
    head = head_revision()
    assert path.name == f"{int(head) + 1:04d}_nothing.py"
    assert f"down_revision = '{head}'" in text or f'down_revision = "{head}"' in text
    assert "op." not in text.split("def upgrade")[1].split("def downgrade")[0]
    assert main(["db", "revision", "-m", "again", "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x").is_dir() and list((tmp_path / "x").glob("*_again.py"))

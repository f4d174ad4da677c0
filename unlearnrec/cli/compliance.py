"""``unlearnrec tickets|certificate|audit`` commands (compliance officers, platform engineers).
Kept apart from the ML commands; nothing here imports torch at parse time. (``flows run`` and
``demo`` are registered by ``flows.cli``, ``dashboard`` by ``dashboard.cli``.)"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from unlearnrec.cli.common import UsageError


def _settings(args: argparse.Namespace):
    from unlearnrec.records.settings import get_settings

    return get_settings(**({"home": Path(args.home)} if getattr(args, "home", None) else {}))


def _platform(args: argparse.Namespace, actor: str):
    from unlearnrec.compliance.platform import Platform

    return Platform.open(_settings(args), actor=actor)


def cmd_tickets_submit(args: argparse.Namespace) -> int:
    from unlearnrec.compliance.ingest import submit_file
    from unlearnrec.ledger import utcnow
    from unlearnrec.records.intake import file_label

    path = Path(args.file)
    label = file_label(path.name)  # printable whatever the name holds
    if not os.path.lexists(path):
        raise UsageError(f"{label} not found")
    # A link, a folder or a special file is refused by intake with its reason (and an event).
    summary = submit_file(_platform(args, "cli"), path, now=utcnow(), actor="cli")
    out = {
        "file": label,
        "new": summary.created,
        "resubmitted": summary.resubmitted,
        "rejected_at_intake": summary.rejected_at_intake,
        "refused": summary.refused_files[0][1] if summary.refused_files else None,
    }
    print(
        json.dumps(out, indent=2)
        if args.json
        else f"{label}: {summary.created} new, {summary.resubmitted} already known, "
        f"{summary.rejected_at_intake} rejected at intake"
        + (f"; REFUSED: {out['refused']}" if out["refused"] else "")
    )
    return 1 if summary.refused_files else 0


def cmd_tickets_list(args: argparse.Namespace) -> int:
    from unlearnrec.ledger import TicketStatus, list_tickets, session_scope, ticket_row

    if args.status is not None and args.status not in TicketStatus.ALL:
        raise UsageError(
            f"--status {args.status!r} is not a ticket status: one of {', '.join(TicketStatus.ALL)}"
        )
    platform = _platform(args, "cli")
    with session_scope(platform.engine) as session:
        rows = [ticket_row(t) for t in list_tickets(session, status=args.status)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'id':>4} {'external id':<14} {'kind':<19} {'status':<10} {'deadline':<11} "
        f"{'days':>5}  reason"
    )
    for r in rows:
        print(
            f"{r['id']:>4} {r['external_id'][:14]:<14} {r['kind'][:19]:<19} "
            f"{r['status']:<10} {r['deadline_at'][:10]:<11} {r['days_left']:>5}  "
            + ("OVERDUE " if r["overdue"] else "")
            + f"{(r['reason'] or '')[:70]}"
        )
    return 0


def cmd_tickets_extend(args: argparse.Namespace) -> int:
    from sqlmodel import select

    from unlearnrec.ledger import Ticket, extend_deadline, session_scope

    if args.days < 1:
        raise UsageError(f"--days {args.days}: give a positive number of days")
    if not args.reason.strip():
        raise UsageError("--reason is empty: say why (it is recorded in the audit trail)")
    platform = _platform(args, "cli")
    with session_scope(platform.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.external_id == args.external_id)).first()
        if ticket is None:
            raise SystemExit(f"error: no ticket {args.external_id}")
        extend_deadline(
            session, ticket, args.days, args.reason, policy=platform.policy, actor="cli"
        )
        print(f"{ticket.external_id}: deadline now {ticket.deadline_at.isoformat()}")
    return 0


def cmd_tickets_correct(args: argparse.Namespace) -> int:
    from unlearnrec.ledger import TicketIn, TransitionError, correct, latest_of, session_scope

    platform = _platform(args, "cli")
    with session_scope(platform.engine) as session:
        rejected = latest_of(session, args.external_id)
        if rejected is None:
            raise SystemExit(f"error: no ticket {args.external_id}")
        items = (
            tuple(i.strip() for i in args.items.split(";") if i.strip())
            if args.items is not None
            else tuple(rejected.items)
        )
        if args.subject is None and rejected.subject is None and rejected.subject_pseudonym:
            raise UsageError(
                f"{rejected.external_id} no longer holds its subject (cleared when it was "
                "closed): give --subject"
            )
        incoming = TicketIn(
            external_id=rejected.external_id,
            kind=args.kind or rejected.kind,
            subject=args.subject if args.subject is not None else rejected.subject,
            items=items,
            legal_basis=args.legal_basis or rejected.legal_basis,
            received_at=rejected.received_at,
            source="cli:tickets correct",
        )
        try:
            ticket = correct(
                session,
                rejected,
                incoming,
                reason=args.reason,
                policy=platform.policy,
                pseudonymise=platform.pseudonymise,
                actor="cli",
                allow_unchanged=True,
            )
        except (TransitionError, ValueError) as exc:
            raise SystemExit(f"error: {exc}") from exc
        print(
            f"{rejected.external_id} (rejected) corrected by {ticket.external_id}: "
            f"{ticket.status}, deadline {ticket.deadline_at.isoformat()}"
        )
    return 0


def cmd_certificate_list(args: argparse.Namespace) -> int:
    from unlearnrec.compliance.lifecycle import certificate_rows

    rows = certificate_rows(_platform(args, "cli"))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(
            f"{r['certificate_id']:<28} {r['status']:<11} run {r['run_id']:<3} "
            f"tickets {','.join(map(str, r['tickets'])):<6} {r['path']}"
        )
    return 0


def _ledger_checks(settings, cert: dict, public_key, *, default_key: bool) -> list[str] | None:
    """What the ledger says about ``cert`` and ``public_key`` (None: no ledger to ask). The key
    must be one the ledger recorded and, when it is the platform's own public key file, the
    public half of the signing key where that is readable; the certificate must be the one the
    ledger recorded under its id."""
    from sqlalchemy.exc import OperationalError
    from sqlmodel import select

    from unlearnrec.ledger import (
        AuditEvent,
        Certificate,
        LedgerUnavailable,
        make_engine,
        session_scope,
    )
    from unlearnrec.ledger.keys import recorded_keys
    from unlearnrec.records import certificates as certs

    try:
        engine = make_engine(settings.database_url, read_only=True)
        with session_scope(engine) as session:
            recorded = recorded_keys(session)
            cid = str(cert.get("certificate_id"))
            row = session.exec(select(Certificate).where(Certificate.certificate_id == cid)).first()
            revoked = session.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "certificate.revoked", AuditEvent.entity_id == cid[:80]
                )
            ).first()
    except (LedgerUnavailable, OperationalError):
        return None
    problems: list[str] = []
    signing = None
    if default_key:
        try:
            signing = certs.load_signing_key_if_present(settings.signing_key)
        except (OSError, ValueError) as exc:
            problems.append(f"signing key: {exc}")
    problems += certs.check_public_key(public_key, recorded, signing)
    if row is None:
        problems.append(f"certificate {cid[:80]} is not recorded in the ledger (not issued by it)")
    try:  # the file's hash: certificates are written as canonical JSON and a newline
        file_sha = certs.sha256_hex(certs.canonical_json(cert) + b"\n")
    except (TypeError, ValueError):
        file_sha = ""
    if revoked is not None and revoked.data.get("sha256") == file_sha:
        problems.append(
            f"certificate {cid[:80]} was revoked by the platform (audit event {revoked.position}: "
            f"{revoked.data.get('reason', 'no reason recorded')})"
        )
    if row is not None:
        try:
            digest = certs.certificate_digest(cert)
        except (TypeError, ValueError):
            digest = ""
        if digest != row.digest:
            problems.append(f"certificate {cid} differs from the one the ledger recorded")
    return problems


def cmd_certificate_verify(args: argparse.Namespace) -> int:
    from unlearnrec.records import certificates as certs

    if not os.path.lexists(args.file):
        raise UsageError(f"certificate {args.file} not found")
    settings = _settings(args)
    key_path = Path(args.public_key) if args.public_key else settings.public_key
    if not key_path.exists():
        raise UsageError(f"public key {key_path} not found (give --public-key)")
    try:
        cert = certs.read_certificate(Path(args.file), strict=True)
        public_key = certs.load_public_key(key_path)
    except (OSError, ValueError) as exc:
        if args.json:
            print(json.dumps({"file": args.file, "ok": False, "problems": [str(exc)]}, indent=2))
        else:
            print(f"INVALID: {exc}")
        return 1
    result = certs.verify_certificate(
        cert,
        public_key,
        artifacts_root=Path(args.artifacts_root) if args.artifacts_root else None,
    )
    problems = list(result.problems)
    ledger = (
        None
        if args.no_ledger
        else _ledger_checks(settings, cert, public_key, default_key=not args.public_key)
    )
    if ledger is not None:
        problems += ledger
    if args.json:
        out = {
            "file": args.file,
            "ok": not problems,
            "key_id": result.key_id,
            "digest": result.digest,
            "ledger_checked": ledger is not None,
            "problems": problems,
        }
        print(json.dumps(out, indent=2))
        return 0 if not problems else 1
    if not problems:
        print(
            f"OK: {args.file} is signed by key {result.key_id} and unaltered "
            f"(digest {result.digest})"
            + (
                "; the key and the certificate are the ones the ledger recorded"
                if ledger is not None
                else ""
            )
        )
        if ledger is None and not args.no_ledger:
            print(f"note: no ledger at {settings.database_url}: the key was not checked against it")
        return 0
    print(f"INVALID: {args.file}")
    for problem in problems:
        print(f"  - {problem}")
    return 1


def cmd_certificate_register_key(args: argparse.Namespace) -> int:
    from unlearnrec.ledger import session_scope
    from unlearnrec.ledger.keys import register_key
    from unlearnrec.records import certificates as certs

    platform = _platform(args, "cli")
    key = platform.signing_key
    with session_scope(platform.engine) as session:
        added = register_key(session, key, actor="cli")
    kid = certs.export_public_key(key, platform.settings.public_key)
    print(
        f"signing key {kid} "
        + ("registered in the ledger" if added else "was registered already")
        + f"; public key written to {platform.settings.public_key}"
    )
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from unlearnrec.ledger import parse_anchor, session_scope, verify_with_certificates
    from unlearnrec.ledger.keys import read_signed_head, recorded_keys, verify_keys
    from unlearnrec.ledger.replay import replay_rows

    try:
        heads = [parse_anchor(h) for h in args.head or []]
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    platform = _platform(args, "cli")
    settings = platform.settings
    pseudonymise = None
    if settings.pseudonym_secret.exists():  # never create the secret just to check with it
        try:
            platform.pseudonym_secret  # noqa: B018  (loads and checks it)
            pseudonymise = platform.pseudonymise
        except (OSError, ValueError) as exc:
            print(f"note: subjects not checked against pseudonyms ({exc})", file=sys.stderr)
    head_file = settings.var / "audit-head.json"
    with session_scope(platform.engine) as session:
        signed_head, head_problems = read_signed_head(head_file, recorded_keys(session))
        if signed_head is not None:
            heads.append(signed_head)
        check = verify_with_certificates(session, settings.certificates, heads)
        key_problems = verify_keys(
            session, settings.certificates, settings.public_key, settings.signing_key
        )
        row_problems = replay_rows(session, pseudonymise=pseudonymise)
    if signed_head is None and not head_problems and not args.json:
        print(
            f"note: no signed head file at {head_file}: a cut-off tail shows only through anchors"
        )
    problems = [*check.problems, *head_problems, *key_problems, *row_problems]
    if args.json:
        out = {
            "ok": not problems,
            "chain_intact": check.ok,
            "events": check.events,
            "certificate_anchors": check.anchors - len(heads),
            "heads": len(heads),
            "signed_head_file": signed_head is not None,
            "problems": problems,
        }
        print(json.dumps(out, indent=2))
        return 0 if not problems else 1
    if not problems:
        print(
            f"OK: {check.events} audit events, hash chain intact; "
            f"{check.anchors - len(heads)} certificate anchor(s) and {len(heads)} exported or "
            "signed head(s) found in it; keys and certificate files match the ledger; every "
            "ticket, run, version and certificate row matches the trail"
        )
        return 0
    print("BROKEN audit chain:" if not check.ok else "BROKEN: the chain is intact, but:")
    for p in problems:
        print(f"  - {p}")
    return 1


def cmd_audit_check_erased(args: argparse.Namespace) -> int:
    from unlearnrec.compliance.erasure import check_erased

    report = check_erased(_platform(args, "cli"))
    held = sum(f.held for f in report.findings)
    if getattr(args, "json", False):
        findings = [{"where": f.where, "what": f.what, "held": f.held} for f in report.findings]
        print(json.dumps({"ok": report.ok, "scanned": report.scanned, "findings": findings}))
        return 0 if report.ok else 1
    for line in report.lines():
        print(f"  {line}")
    if report.ok:
        print(
            f"OK: {report.scanned} copies scanned (store, its remote, pipeline input and outputs, "
            "project DVC cache and remotes, processed ticket files): no erased pair or erased "
            "user id"
            + (f" except {held} held for a pending final check or a legal hold" if held else "")
        )
        return 0
    print(f"FOUND erased data in {len(report.findings) - held} copies (run retention)")
    return 1


def cmd_audit_head(args: argparse.Namespace) -> int:
    from unlearnrec.ledger import session_scope, verify_chain

    with session_scope(_platform(args, "cli").engine) as session:
        check = verify_chain(session)
    if check.head is None:
        raise SystemExit("error: the audit trail is empty")
    if args.json:
        out = {"position": check.head[0], "hash": check.head[1], "chain_intact": check.ok}
        print(json.dumps(out, indent=2))
        return 0 if check.ok else 1
    # Kept outside the database (a ticket system, a printed record), it lets `audit verify
    # --head` show later that no event up to it was cut off or rewritten.
    print(f"{check.head[0]}:{check.head[1]}")
    return 0 if check.ok else 1


def cmd_db_current(args: argparse.Namespace) -> int:
    from unlearnrec.ledger.db import LedgerUnavailable, make_engine, safe_url, schema_status
    from unlearnrec.ledger.migrations import script_directory

    settings = _settings(args)
    try:
        engine = make_engine(settings.database_url, read_only=True)
    except LedgerUnavailable:  # no ledger yet: `db upgrade` (or any command) creates it at head
        script = script_directory()
        revisions = [s.revision for s in reversed(list(script.walk_revisions()))]
        status = {"current": None, "head": script.get_current_head(), "recorded": False}
        status["pending"] = revisions
    else:
        try:
            status = schema_status(engine)
        finally:
            engine.dispose()
    status = {"ledger": safe_url(settings.database_url), **status}
    status["up_to_date"] = status["current"] == status["head"]
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        current = status["current"] or "none (no ledger tables)"
        if status["current"] and not status["recorded"]:
            current += " (made before migrations: inferred from its tables, not recorded)"
        print(f"ledger:  {status['ledger']}\ncurrent: {current}\nhead:    {status['head']}")
        if status["pending"]:
            print(f"pending: {', '.join(status['pending'])}  (run `unlearnrec db upgrade`)")
        elif status["pending"] is None:
            print("the ledger is newer than this version of unlearnrec: upgrade unlearnrec")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from unlearnrec.ledger.db import make_engine, safe_url, schema_status, upgrade_db

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    try:
        pending = schema_status(engine)["pending"]
        before, after = upgrade_db(engine)
    finally:
        engine.dispose()
    where = safe_url(settings.database_url)
    if before is None:
        print(f"{where}: new ledger created at schema revision {after}")
    elif before == after:
        print(f"{where}: already at schema revision {after}, nothing to do")
    else:
        print(f"{where}: upgraded {before} -> {after} (applied {', '.join(pending or [])})")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from unlearnrec.cli.common import _log, _params, _progress
    from unlearnrec.cli.init_data import InitUsageError, check, run_init, summary_text

    settings = _settings(args)
    params_path = args.params or str(settings.home / "params.yaml")
    if args.params and not Path(args.params).is_file():
        raise UsageError(f"params file {args.params} not found")
    _, raw = _params(params_path if Path(params_path).is_file() else None, args.set)
    try:
        plan = check(settings, Path(args.data), name=args.name, force=args.force)
    except InitUsageError as exc:
        raise UsageError(str(exc)) from None
    from unlearnrec.config import params_from_dict

    epochs = params_from_dict(raw).train.max_epochs
    on_epoch, bar = _progress("train base model", epochs)
    with bar:
        result = run_init(
            settings,
            plan,
            params_raw=raw,
            min_rating=args.min_rating,
            device=args.device,
            log=_log,
            on_epoch=on_epoch,
        )
    print(json.dumps(result, indent=2) if args.json else summary_text(result))
    return 0


def cmd_db_revision(args: argparse.Namespace) -> int:
    from unlearnrec.ledger.db import new_revision

    if not args.message.strip():
        raise UsageError("-m is empty: say what the revision changes")
    path = new_revision(args.message, write_to=Path(args.out) if args.out else None)
    print(f"{path}: read and edit it (SQLite cannot show everything; data may need moving)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    def finish(
        p: argparse.ArgumentParser,
        func: Callable[[argparse.Namespace], int],
        *,
        json_output: bool = False,
    ) -> None:
        """How a command here ends: --json where it reports, --home, the function it runs."""
        if json_output:
            p.add_argument("--json", action="store_true")
        p.add_argument(
            "--home",
            default=None,
            help="project root (default: UNLEARNREC_HOME or the working directory)",
        )
        p.set_defaults(func=func)

    p = sub.add_parser(
        "init",
        help="make your own interaction file the platform's dataset: validate it, lay it out "
        "with id maps (DVC-tracked), train the base model, pre-train the encoder",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="a LightGCN folder (train.txt, test.txt), a MovieLens ratings file (u.data, "
        "ratings.dat) or a CSV/TSV of user,item[,rating,timestamp], header optional",
    )
    p.add_argument(
        "--name", default=None, help="dataset folder under data/ (default: from the file name)"
    )
    p.add_argument(
        "--min-rating",
        type=float,
        default=None,
        help="keep ratings >= this as positives (default: every rating)",
    )
    p.add_argument("--force", action="store_true", help="replace a non-empty dataset folder")
    p.add_argument("--params", default=None, help="params file (default: HOME/params.yaml)")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override one parameter, e.g. --set train.max_epochs=50",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda:0")
    finish(p, cmd_init, json_output=True)

    tickets = sub.add_parser("tickets", help="submit and list deletion tickets")
    tsub = tickets.add_subparsers(dest="tickets_command", required=True, metavar="ACTION")
    p = tsub.add_parser("submit", help="record the tickets of a JSON or CSV file")
    p.add_argument("file")
    finish(p, cmd_tickets_submit, json_output=True)
    p = tsub.add_parser("list", help="list tickets (subjects pseudonymised)")
    p.add_argument(
        "--status",
        default=None,
        help="only tickets in this status: received, validated, rejected, scheduled, "
        "unlearned, verified, certified, failed or escalated",
    )
    finish(p, cmd_tickets_list, json_output=True)
    p = tsub.add_parser("extend", help="extend a ticket's deadline, with a reason")
    p.add_argument("external_id")
    p.add_argument("--days", type=int, required=True)
    p.add_argument("--reason", required=True)
    finish(p, cmd_tickets_extend)

    p = tsub.add_parser(
        "correct",
        help="correct a rejected ticket: a new ticket with the changes, recorded in the audit",
    )
    p.add_argument("external_id")
    p.add_argument("--kind", default=None)
    p.add_argument("--subject", default=None, help="needed again: a closed ticket holds none")
    p.add_argument("--items", default=None, help="items separated by ';'")
    p.add_argument("--legal-basis", default=None)
    p.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
    finish(p, cmd_tickets_correct)

    cert = sub.add_parser("certificate", help="list and verify certificates of erasure")
    csub = cert.add_subparsers(dest="certificate_command", required=True, metavar="ACTION")
    p = csub.add_parser("list", help="certificates with their file paths")
    finish(p, cmd_certificate_list, json_output=True)
    p = csub.add_parser("verify", help="check a certificate's signature and hashes")
    p.add_argument("file")
    p.add_argument("--public-key", default=None, help="PEM file (default: the platform's)")
    p.add_argument("--artifacts-root", default=None, help="also check listed artifact hashes")
    p.add_argument(
        "--no-ledger",
        action="store_true",
        help="check the file and key only (a verifier without the ledger)",
    )
    finish(p, cmd_certificate_verify, json_output=True)
    p = csub.add_parser(
        "register-key",
        help="pin the current signing key in the ledger (key rotation, docs/workflow.md)",
    )
    finish(p, cmd_certificate_register_key)

    db = sub.add_parser("db", help="the ledger's schema: where it stands, upgrade it")
    dsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = dsub.add_parser("current", help="the ledger's schema revision and this code's")
    finish(p, cmd_db_current, json_output=True)
    p = dsub.add_parser(
        "upgrade",
        help="migrate the ledger to this code's schema in place (back it up first); "
        "creates a new one at head",
    )
    finish(p, cmd_db_upgrade)
    p = dsub.add_parser(
        "revision",
        help="(developers) draft the next migration from the difference between the ledger's "
        "models and its head revision",
    )
    p.add_argument("-m", "--message", required=True, help="what the revision changes")
    p.add_argument("--out", default=None, help="folder to write to (default: the package's)")
    p.set_defaults(func=cmd_db_revision)

    audit = sub.add_parser("audit", help="check the ledger's audit trail")
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    p = asub.add_parser(
        "verify", help="recompute the hash chain and check it against certificates' anchors"
    )
    p.add_argument(
        "--head",
        action="append",
        default=None,
        metavar="POSITION:HASH",
        help="an exported head (`audit head`) the chain must still hold; repeatable",
    )
    finish(p, cmd_audit_verify, json_output=True)
    p = asub.add_parser("head", help="print POSITION:HASH of the last event, to keep elsewhere")
    finish(p, cmd_audit_head, json_output=True)
    p = asub.add_parser(
        "check-erased",
        help="scan every copy the platform keeps for data certified tickets erased",
    )
    finish(p, cmd_audit_check_erased, json_output=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)

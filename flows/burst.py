"""Runs that cannot collide, exercised: a burst of tickets on a PostgreSQL ledger, processed by a
real Prefect server through a process work pool polled by two workers.

    PYTHONPATH=. .venv/bin/python -m flows.burst --tickets 200 --json docs/bench/burst.json

Everything is throwaway and removed on every exit path: a scratch project home built from the
pipeline's outputs (``artifacts/``, as ``flows.bench`` builds it: run ``python3 dev.py demo``
first), a PostgreSQL 15 cluster (as ``.ci/postgres.sh`` starts one) holding the ledger, and a
Prefect server with its own ``PREFECT_HOME``. ``process_deletions`` is deployed to a process work
pool with the repository's concurrency limit (one run at a time, ``CANCEL_NEW``, as
``prefect.yaml``), two ``prefect worker start`` processes poll it, the burst is ingested, and a
process-deletions flow run is created every few seconds until every valid ticket is certified.
The report checks that each valid ticket was certified exactly once (one certificate, one run,
one audited move to ``certified``) and every invalid one rejected with a reason, and gives the
flow runs' final states per worker and the tickets per minute.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
POOL = "unlearnrec-burst"
DEPLOYMENT = "process-deletions-burst"
WORKERS = ("burst-worker-1", "burst-worker-2")
# Final Prefect state types: a run in one of them will not change any more.
FINAL = {"COMPLETED", "CANCELLED", "FAILED", "CRASHED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_group(proc: subprocess.Popen, sig: int, wait: float) -> None:
    """Stop a child started in its own session, and whatever it started (a worker's flow-run
    processes): ``sig`` to its process group, SIGKILL if it outlives ``wait`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    # A leader gone but children left (a flow run mid-pass): they must not outlive the burst.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class Postgres:
    """A throwaway PostgreSQL 15 cluster on 127.0.0.1 (the logic of ``.ci/postgres.sh``): run as
    the ``postgres`` user when we are root, since PostgreSQL refuses to run as root."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").is_file():
            raise SystemExit(f"PostgreSQL 15 not found in {PG_BIN} (apt-get install postgresql)")
        self.dir = Path(tempfile.mkdtemp(prefix="unlearnrec-burst-pg-"))
        self.port = _free_port()
        self.root = os.getuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")

    def _as_owner(self, *cmd: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if self.root else []
        # From inside the cluster dir: `postgres` never needs access to our working directory.
        return subprocess.run(
            [*prefix, *cmd], cwd=self.dir, capture_output=True, text=True, check=False
        )

    def start(self) -> str:
        done = self._as_owner(
            str(PG_BIN / "initdb"),
            "-D",
            f"{self.dir}/data",
            "-U",
            "app",
            "--auth=trust",
            "--no-locale",
            "--encoding=UTF8",
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir}"
        done = self._as_owner(
            str(PG_BIN / "pg_ctl"),
            "-D",
            f"{self.dir}/data",
            "-l",
            f"{self.dir}/server.log",
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        )
        if done.returncode:
            log = Path(self.dir, "server.log")
            raise RuntimeError(f"pg_ctl start failed:\n{log.read_text() if log.exists() else ''}")
        return f"postgresql+psycopg://app@127.0.0.1:{self.port}/postgres"

    def version(self) -> str:
        done = subprocess.run([str(PG_BIN / "postgres"), "--version"], capture_output=True)
        return done.stdout.decode().strip()

    def stop(self) -> None:
        if (self.dir / "data" / "postmaster.pid").exists():
            self._as_owner(
                str(PG_BIN / "pg_ctl"), "-D", f"{self.dir}/data", "-m", "fast", "-w", "stop"
            )
        shutil.rmtree(self.dir, ignore_errors=True)


def _prefect(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefect", *args]


def _start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """``prefect server start`` on ``port``; returns once it answers its health check."""
    proc = subprocess.Popen(
        _prefect("server", "start", "--host", "127.0.0.1", "--port", str(port)),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited ({proc.returncode}):\n{log.read_text()}")
        url = f"http://127.0.0.1:{port}/api/health"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as r:
            if r.status == 200:
                return proc
        time.sleep(1)
    raise RuntimeError(f"prefect server not healthy after 180 s:\n{log.read_text()[-3000:]}")


def _burst_tickets(files, n: int, rng: np.random.Generator, now: datetime):
    """``n`` valid tickets with distinct subjects and items (so none is a duplicate of another),
    two erase_user : two erase_interactions : one take_down_item; then invalid ones, each with
    the reason it must be rejected for."""
    received = (now - timedelta(days=1)).isoformat(timespec="seconds")
    pairs = files.fit
    live = [u for u in np.unique(pairs[:, 0]) if not str(files.user_ids[u]).startswith("erased:")]
    kinds = [
        ("erase_user", "erase_user", "erase_interactions", "erase_interactions", "take_down_item")[
            k % 5
        ]
        for k in range(n)
    ]
    people = rng.permutation(live)
    counts = np.bincount(pairs[:, 1], minlength=files.num_items)
    # Takedowns: the middle of the popularity range (every one has pairs to remove).
    middle = np.argsort(counts)[len(counts) // 4 : 3 * len(counts) // 4]
    takedown = list(rng.permutation(middle[counts[middle] > 0]))
    taken = set(takedown[: kinds.count("take_down_item")])
    basis = ("GDPR-17(1)(a)", "CCPA-1798.105", "GDPR-17(1)(b)")
    valid, p, d = [], 0, 0
    for k, kind in enumerate(kinds):
        ticket = {
            "external_id": f"BURST-{k}",
            "kind": kind,
            "legal_basis": basis[k % 3],
            "received_at": received,
        }
        if kind == "take_down_item":
            ticket["items"] = [str(files.item_ids[takedown[d]])]
            d += 1
        else:
            u = int(people[p])
            p += 1
            ticket["subject"] = str(files.user_ids[u])
            if kind == "erase_interactions":
                own = [i for i in pairs[pairs[:, 0] == u, 1] if i not in taken]
                ticket["items"] = [str(files.item_ids[i]) for i in own[:2]]
        valid.append(ticket)
    spare = int(people[p])
    never = next(i for i in range(files.num_items) if i not in set(pairs[pairs[:, 0] == spare, 1]))
    first_user = next(t for t in valid if t["kind"] == "erase_user")
    invalid = [
        (
            {
                "external_id": "BURST-BAD-user",
                "kind": "erase_user",
                "subject": "no-such-user",
                "legal_basis": "GDPR-17(1)(a)",
                "received_at": received,
            },
            "unknown user",
        ),
        (
            {
                "external_id": "BURST-BAD-item",
                "kind": "take_down_item",
                "items": ["no-such-item"],
                "legal_basis": "GDPR-17(1)(d)",
                "received_at": received,
            },
            "unknown item",
        ),
        (
            {
                "external_id": "BURST-BAD-never",
                "kind": "erase_interactions",
                "subject": str(files.user_ids[spare]),
                "items": [str(files.item_ids[never])],
                "legal_basis": "GDPR-17(1)(a)",
                "received_at": received,
            },
            "item not interacted",
        ),
        (
            {
                "external_id": "BURST-BAD-duplicate",
                "kind": "erase_user",
                "subject": first_user["subject"],
                "legal_basis": "GDPR-17(1)(a)",
                "received_at": received,
            },
            f"duplicate of {first_user['external_id']}",
        ),
        (
            {
                "external_id": "BURST-BAD-nokind",
                "subject": str(files.user_ids[spare]),
                "legal_basis": "GDPR-17(1)(a)",
                "received_at": received,
            },
            "no kind",
        ),
    ]
    return valid, invalid


def _deploy(home: Path, poll_env: dict[str, str]) -> str:
    """Create the process pool and deploy ``process_deletions`` to it from this checkout, with
    ``prefect.yaml``'s concurrency limit. ``force``: the default policy's 60-minute batching
    window would hold a burst back for an hour; the batch size (``max_tickets``) still applies."""
    subprocess.run(
        _prefect("work-pool", "create", POOL, "--type", "process"),
        env=poll_env,
        check=True,
        capture_output=True,
    )
    from prefect import Flow
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    flow = Flow.from_source(str(ROOT), "flows/process_deletions.py:process_deletions")
    return str(
        flow.deploy(
            name=DEPLOYMENT,
            work_pool_name=POOL,
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
            ),
            parameters={"params": {"home": str(home), "force": True, "device": "cpu"}},
            build=False,
            push=False,
            print_next_steps=False,
            ignore_warnings=True,  # the "use .serve for local development" hint: a pool is meant
        )
    )


def _progress(engine, external_ids: list[str]) -> tuple[Counter, datetime | None]:
    """The valid tickets' statuses, and when the last certificate was issued."""
    from sqlmodel import func, select

    from unlearnrec.ledger import Certificate, Ticket, session_scope

    with session_scope(engine) as session:
        statuses = Counter(
            session.exec(select(Ticket.status).where(Ticket.external_id.in_(external_ids)))
        )
        last = session.exec(select(func.max(Certificate.issued_at))).one()
    return statuses, last


def _ledger_checks(engine, valid: list[str], invalid: list[str]) -> dict:
    """Exactly once, from the ledger's own tables: each valid ticket certified, named by one
    live certificate (superseded ones aside: a final upgrade replaces a provisional one), in one
    unlearning run, with one audited move to ``certified``; each invalid one rejected, with a
    reason."""
    from sqlmodel import select

    from unlearnrec.ledger import AuditEvent, Certificate, Ticket, UnlearningRun, session_scope

    with session_scope(engine) as session:
        tickets = {t.external_id: t for t in session.exec(select(Ticket))}
        certs = list(session.exec(select(Certificate)))
        runs = list(session.exec(select(UnlearningRun).order_by(UnlearningRun.id)))
        moves = Counter(
            e.entity_id
            for e in session.exec(select(AuditEvent).where(AuditEvent.action == "ticket.status"))
            if (e.data or {}).get("to") == "certified"
        )
    superseded = {c.supersedes_id for c in certs if c.supersedes_id}
    live_certs: dict[int, list] = {}
    cert_runs: dict[int, set[int]] = {}
    for c in certs:
        for tid in c.ticket_ids:
            cert_runs.setdefault(tid, set()).add(c.run_id)
            if c.id not in superseded:
                live_certs.setdefault(tid, []).append(c)
    run_of: dict[int, list[int]] = {}
    for r in runs:
        for tid in r.ticket_ids:
            run_of.setdefault(tid, []).append(r.id)
    problems = []
    for ext in valid:
        t = tickets.get(ext)
        if t is None:
            problems.append(f"{ext}: not in the ledger")
            continue
        if t.status != "certified":
            problems.append(f"{ext}: {t.status} ({t.reason})")
        if len(live_certs.get(t.id, [])) != 1:
            problems.append(f"{ext}: {len(live_certs.get(t.id, []))} live certificates")
        if len(cert_runs.get(t.id, set())) > 1:
            problems.append(f"{ext}: certified by runs {sorted(cert_runs[t.id])}")
        if len(run_of.get(t.id, [])) != 1:
            problems.append(f"{ext}: in unlearning runs {run_of.get(t.id, [])}")
        if moves[str(t.id)] != 1:
            problems.append(f"{ext}: {moves[str(t.id)]} audited moves to certified")
    rejected = []
    for ext in invalid:
        t = tickets.get(ext)
        if t is None or t.status != "rejected" or not t.reason:
            problems.append(f"{ext}: {t.status if t else 'missing'}, expected rejected")
        if t is not None:
            rejected.append({"external_id": ext, "status": t.status, "reason": t.reason})
    per_ticket = Counter(len(live_certs.get(tickets[e].id, [])) for e in valid if e in tickets)
    return {
        "certified_exactly_once": not problems,
        "problems": problems[:50],
        "live_certificates_per_valid_ticket": {str(k): v for k, v in sorted(per_ticket.items())},
        "certificate_rows": len(certs),
        "rejected": rejected,
        "unlearning_runs": [
            {
                "run": r.id,
                "status": r.status,
                "attempt": r.attempt,
                "tickets": len(r.ticket_ids),
                "method": r.method,
                "unlearn_seconds": r.timings.get("unlearn_seconds"),
            }
            for r in runs
        ],
    }


SUBMIT = re.compile(r"Worker '([^']+)' submitting flow run '([0-9a-f-]{36})'")
ABORT = re.compile(r"Aborted submission of flow run '([0-9a-f-]{36})'[.:]? ?(.*)")


def _worker_claims(logs: dict[str, Path]) -> tuple[dict[str, str], Counter]:
    """Which worker picked up each flow run, from the workers' own log lines: the one whose
    submission the server accepted, else the first one it refused (the concurrency limit
    cancelled the run as that worker proposed to start it); and the refusals' reasons."""
    picked: dict[str, tuple[str, str]] = {}  # run -> (log time, worker), the earliest refusal
    refusals: Counter = Counter()
    for name, log in logs.items():
        text = log.read_text(errors="replace") if log.exists() else ""
        tried = {m.group(2) for m in SUBMIT.finditer(text)}
        refused = {}
        for line in text.splitlines():
            m = ABORT.search(line)
            if m:
                refused[m.group(1)] = line[:12]  # HH:MM:SS.mmm
                refusals[f"{name}: {m.group(2).strip()}"] += 1
        for run in tried - set(refused):
            picked[run] = ("", name)  # sorts first: the accepted submission wins
        for run, at in refused.items():
            if run not in picked or (picked[run][0] and at < picked[run][0]):
                picked[run] = (at, name)
    return {run: name for run, (_, name) in picked.items()}, refusals


def _flow_runs(run_ids: list[str], logs: dict[str, Path]) -> dict:
    from prefect.client.orchestration import get_client

    picked, refusals = _worker_claims(logs)
    rows = []
    with get_client(sync_client=True) as client:
        for rid in run_ids:
            fr = client.read_flow_run(rid)
            rows.append(
                {
                    "id": rid,
                    "state": fr.state.name if fr.state else None,
                    "message": (fr.state.message or "")[:200] if fr.state else "",
                    "worker": picked.get(rid),
                    "run_seconds": round(fr.total_run_time.total_seconds(), 1),
                }
            )
    by_worker: dict[str, Counter] = {w: Counter() for w in logs}
    for row in rows:
        by_worker.setdefault(row["worker"] or "no worker", Counter())[row["state"]] += 1
    return {
        "created": len(rows),
        "states": dict(Counter(r["state"] for r in rows)),
        "by_worker": {
            w: {"flow_runs": sum(c.values()), "states": dict(c)} for w, c in by_worker.items()
        },
        "submissions_refused_by_server": dict(refusals),
        "runs": rows,
    }


def _states(run_ids: list[str]) -> Counter:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = [client.read_flow_run(r) for r in run_ids]
    return Counter(fr.state.type.value if fr.state else "NONE" for fr in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=200, help="valid tickets in the burst")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between flow runs")
    parser.add_argument("--poll", type=int, default=5, help="workers' query interval (seconds)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after (seconds)")
    parser.add_argument(
        "--tail", type=int, default=2, help="passes to complete after all are certified"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per run")
    parser.add_argument("--json", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs)")
    args = parser.parse_args(argv)
    # A SIGTERM takes the same way out as Ctrl-C: every finally below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_start = os.getloadavg()
    base = Path(tempfile.mkdtemp(prefix="unlearnrec-burst-"))
    procs: list[subprocess.Popen] = []
    pg = Postgres()
    try:
        return _burst(args, argv, base, pg, procs, load_start)
    finally:
        for proc in reversed(procs):  # workers (and their flow runs) first, then the server
            _stop_group(proc, signal.SIGINT, 60)
        pg.stop()
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


def _burst(args, argv, base: Path, pg: Postgres, procs: list, load_start) -> int:
    db_url = pg.start()
    home_parent = base / "homes"
    home_parent.mkdir()
    prefect_port = _free_port()
    threads = str(args.threads)
    # Set before anything imports prefect, so this process's client talks to the new server.
    os.environ.update(
        {
            "PYTHONPATH": str(ROOT),
            "UNLEARNREC_DB_URL": db_url,
            "PREFECT_HOME": str(base / "prefect"),
            "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",  # nobody looks at it: spare the CPU
            "PREFECT_WORKER_QUERY_SECONDS": str(args.poll),
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
        }
    )
    from flows.bench import _fresh_home, _platform

    home = _fresh_home(home_parent)  # sets UNLEARNREC_HOME
    os.environ["UNLEARNREC_POLICY_PATH"] = str(home / "policies" / "gdpr-default.yaml")
    platform, files = _platform(home)  # creates the ledger's tables on PostgreSQL, version 0
    env = dict(os.environ)

    server = _start_server(env, prefect_port, base / "server.log")
    procs.append(server)
    deployment = _deploy(home, env)
    logs = {w: base / f"{w}.log" for w in WORKERS}
    for name, log in logs.items():
        procs.append(
            subprocess.Popen(
                _prefect("worker", "start", "--pool", POOL, "--name", name, "--type", "process"),
                env=env,
                cwd=ROOT,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    from prefect import __version__ as prefect_version
    from prefect.deployments import run_deployment

    from unlearnrec.compliance.ingest import ingest_inbox
    from unlearnrec.files import atomic_write_text
    from unlearnrec.ledger import utcnow

    rng = np.random.default_rng(0)
    valid, invalid = _burst_tickets(files, args.tickets, rng, utcnow())
    inbox = platform.settings.inbox
    # One file, valid tickets first: intake numbers tickets in file order, so the duplicate is
    # the later ticket (the one rejected), not BURST-0.
    burst = valid + [t for t, _ in invalid]
    atomic_write_text(inbox / "burst.json", json.dumps({"tickets": burst}))
    t0 = time.perf_counter()
    ingested = ingest_inbox(platform, now=utcnow(), actor="bench:burst")
    ingest_seconds = time.perf_counter() - t0

    valid_ids = [t["external_id"] for t in valid]
    run_ids: list[str] = []
    first_run_at: datetime | None = None
    deadline = time.monotonic() + args.timeout
    statuses, last_cert = Counter(), None
    while time.monotonic() < deadline:
        fr = run_deployment(deployment, timeout=0)
        first_run_at = first_run_at or datetime.now(UTC)
        run_ids.append(str(fr.id))
        time.sleep(args.interval)
        statuses, last_cert = _progress(platform.engine, valid_ids)
        dead = [w for w, p in zip(WORKERS, procs[1:], strict=True) if p.poll() is not None]
        if dead:
            raise RuntimeError(f"worker(s) exited: {dead}")
        # Done once no valid ticket is open: all certified, or some closed otherwise (reported).
        if statuses["certified"] + statuses["rejected"] == len(valid_ids):
            break
        print(f"{len(run_ids)} flow runs, tickets {dict(statuses)}", flush=True)
    certified = statuses["certified"]
    certificates_when_done = _ledger_checks(platform.engine, valid_ids, [])["certificate_rows"]
    # Passes over a finished burst: each must complete and certify nothing again (the checks
    # below count certificates and audited moves per ticket after them).
    tail_from, tail_deadline = len(run_ids), time.monotonic() + 600
    while args.tail and time.monotonic() < tail_deadline:
        if _states(run_ids[tail_from:])["COMPLETED"] >= args.tail:
            break
        run_ids.append(str(run_deployment(deployment, timeout=0).id))
        time.sleep(args.interval)
    # Let the runs created last reach a final state (they find nothing left, or are cancelled).
    settle = time.monotonic() + 600
    while time.monotonic() < settle and set(_states(run_ids)) - FINAL:
        time.sleep(args.poll)

    checks = _ledger_checks(platform.engine, valid_ids, [t["external_id"] for t, _ in invalid])
    flow_runs = _flow_runs(run_ids, logs)
    if last_cert is not None and last_cert.tzinfo is None:
        last_cert = last_cert.replace(tzinfo=UTC)  # the ledger stores naive UTC
    wall = (last_cert - first_run_at).total_seconds() if last_cert and first_run_at else None
    all_done = certified == len(valid_ids)
    policy = platform.policy
    result = {
        "command": " ".join(["python", "-m", "flows.burst", *(argv or sys.argv[1:])]),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "valid_tickets": len(valid_ids),
        "invalid_tickets": len(invalid),
        "kinds": dict(Counter(t["kind"] for t in valid)),
        "ledger": f"{pg.version()} (throwaway cluster, 127.0.0.1)",
        "prefect": f"{prefect_version}: own server (SQLite), process work pool, 2 workers",
        "deployment": {
            "concurrency_limit": 1,
            "collision_strategy": "CANCEL_NEW",
            "parameters": {"force": True, "device": "cpu"},
        },
        "policy": {
            "id": policy.id,
            "version": policy.version,
            "window_minutes": policy.batching.window_minutes,
            "max_tickets": policy.batching.max_tickets,
            "note": "force=True: the 60-minute window would hold the burst back; batches "
            "still hold at most max_tickets",
        },
        "worker_poll_seconds": args.poll,
        "flow_run_interval_seconds": args.interval,
        "torch_threads_per_run": args.threads,
        "ingest": {
            "seconds": round(ingest_seconds, 2),
            "created": ingested.created,
            "rejected_at_intake": ingested.rejected_at_intake,
        },
        "all_valid_certified": all_done,
        "certificate_rows_when_all_certified": certificates_when_done,
        "passes_completed_after_all_certified": _states(run_ids[tail_from:])["COMPLETED"],
        "certified": certified,
        **checks,
        "expected_rejections": {t["external_id"]: why for t, why in invalid},
        "flow_runs": flow_runs,
        "wall_seconds_first_flow_run_to_last_certificate": round(wall, 1) if wall else None,
        "tickets_per_minute": round(len(valid_ids) / (wall / 60), 2) if wall and all_done else None,
        "cpu_count": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps({k: v for k, v in result.items() if k != "flow_runs"}, indent=2))
    print(json.dumps({k: v for k, v in flow_runs.items() if k != "runs"}, indent=2))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0 if all_done and checks["certified_exactly_once"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The dashboard in a real browser: start ``unlearnrec dashboard`` on a ledger, drive it with
headless Chromium (Debian's ``/usr/bin/chromium`` through Playwright; never a browser download)
and check what a compliance officer would see.

    python -m tests.dashboard.e2e --out artifacts/e2e               # the check CI runs
    python -m tests.dashboard.e2e --screenshots docs/screenshots    # the docs' page screenshots

Developer tooling run from the repository root; not part of the shipped packages.

The check (seeded ledger, ``tests.dashboard.seed``): a wrong password is refused and shows no
data; the right one opens a deep link to a certificate, which shows PASS; the tampered
certificate shows FAIL; every page renders without an exception; and at a laptop's widths
(``SCREENS``: 1400x900 and 1280x800) no table on any page is wider than its frame, so no column
hides behind a horizontal scroll. Screenshots (one per page and width) and the server log go to
``--out``.

``--screenshots DIR``: one screenshot per page, from the ledger the demo left in
``var/ledger.sqlite`` when there is one (copied to a temporary folder first, so ``var/`` is only
read), else from the seeded ledger (``--ledger`` chooses).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from dashboard.auth import ENV_VAR, hash_password
from dashboard.ui import PAGES
from tests.dashboard.seed import TAMPERED_CERTIFICATE, TICKETS, VALID_CERTIFICATE, seed_ledger

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# stack.md: what makes Debian's Chromium reliable headless in a container.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 30_000
# The laptop screens every page's tables must fit (width, height in CSS pixels).
SCREENS = ((1400, 900), (1280, 800))
PAGE_TITLES = {name: title for name, (_, title, _) in PAGES.items()}


class CheckFailed(AssertionError):
    pass


def _say(msg: str) -> None:
    print(f"[e2e] {msg}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path


@contextmanager
def dashboard_server(env: dict[str, str], log: Path, *, timeout: float = 90) -> Iterator[Server]:
    """``unlearnrec dashboard`` on a free port; yields once ``/_stcore/health`` answers ok."""
    port = _free_port()
    cmd = [sys.executable, "-m", "unlearnrec.cli", "dashboard", "--port", str(port)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one below
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise CheckFailed(f"the dashboard exited with {proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise CheckFailed(f"the dashboard did not answer within {timeout:.0f} s; see {log}")
            time.sleep(0.3)
        yield Server(url, proc, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# -- browser helpers ----------------------------------------------------------------------------


_IDLE_APP = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def _settle(page, *, extra_ms: int = 400) -> None:
    """Wait until Streamlit has finished running the script and drawing: the app says it is not
    running, the status widget is gone, no element is stale; then charts get ``extra_ms``."""
    for _ in range(2):  # twice: a run can start (st.rerun, a resize) right after the first wait
        page.wait_for_selector(_IDLE_APP, timeout=TIMEOUT_MS)
        page.wait_for_selector(
            '[data-testid="stStatusWidget"]', state="detached", timeout=TIMEOUT_MS
        )
        page.wait_for_function(
            "() => !document.querySelector('[data-stale=\"true\"]')", timeout=TIMEOUT_MS
        )
        page.wait_for_timeout(extra_ms)


def _title(page, text: str) -> None:
    page.get_by_role("heading", name=text, exact=True).first.wait_for(timeout=TIMEOUT_MS)


def _no_exception(page, where: str) -> None:
    if page.locator('[data-testid="stException"]').count():
        raise CheckFailed(f"{where}: the page shows an exception")


# Each st.dataframe is a glide-data-grid canvas; its ``.dvn-scroller`` is the element that
# scrolls, so a scrollWidth beyond its clientWidth is a column out of view on first sight. The
# grid's accessible table names the columns (``role=columnheader``) for the message.
_TABLE_WIDTHS = """() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"]'))
  .map(el => {
    const s = el.querySelector('.dvn-scroller');
    return {
      columns: Array.from(el.querySelectorAll('[role="columnheader"]')).map(h => h.textContent),
      content: s ? s.scrollWidth : null,
      visible: s ? s.clientWidth : null,
    };
  })"""


_GRIDS_DRAWN = """() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"]'))
  .every(el => el.querySelector('.dvn-scroller'))"""


def _grids_drawn(page) -> None:
    """Wait for every table's grid to be mounted: on a busy machine a grid can still be drawing
    after the script has finished (a grid that never appears is reported by the measure)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with suppress(PlaywrightTimeout):
        page.wait_for_function(_GRIDS_DRAWN, timeout=TIMEOUT_MS)


def cut_off_tables(page, where: str) -> list[str]:
    """One sentence per table on the page whose columns do not all fit its visible width."""
    tables = page.evaluate(_TABLE_WIDTHS)
    problems = []
    for i, t in enumerate(tables, 1):
        if t["content"] is None:
            problems.append(f"{where}: table {i} has no grid scroller (Streamlit changed?)")
        elif t["content"] > t["visible"] + 1:  # 1 px: sub-pixel rounding of the two measures
            problems.append(
                f"{where}: table {i} ({', '.join(t['columns'][:3])}, …) is {t['content']} px "
                f"wide in a {t['visible']} px frame: its right-hand columns are cut off"
            )
    return problems


def _screens(page, out: Path | None, name: str, shots: list[Path]) -> list[str]:
    """At each laptop screen: the page's tables measured, then (``out`` given) a screenshot of
    the page. Returns the cut-off tables."""
    problems = []
    for width, height in SCREENS:
        where = f"{name} at {width}x{height}"
        page.set_viewport_size({"width": width, "height": height})
        _settle(page)
        _grids_drawn(page)
        found = cut_off_tables(page, where)
        if not page.locator('[data-testid="stDataFrame"]').count():
            found.append(f"{where}: no table found to measure")
        problems += found
        if out is not None:
            shots.append(_shoot(page, out / f"{name}-{width}x{height}.png", height=height))
        _say(f"{where}: {len(found)} table(s) cut off" if found else f"{where}: every table fits")
    page.set_viewport_size({"width": SCREENS[0][0], "height": SCREENS[0][1]})
    return problems


def _login(page, url: str, password: str) -> None:
    page.goto(url)
    field = page.get_by_label("Password", exact=True)
    field.wait_for(timeout=TIMEOUT_MS)
    field.fill(password)
    page.get_by_role("button", name="Log in").click()


def _shoot(page, path: Path, *, height: int = 900) -> Path:
    """A screenshot of the whole page: the viewport grows to the main area's height first
    (Streamlit scrolls inside its main container, which full-page capture would cut off), then
    goes back to ``height``."""
    page_height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? m.scrollHeight : document.body.scrollHeight; }"
    )
    width = page.viewport_size["width"] if page.viewport_size else SCREENS[0][0]
    full = max(height, min(int(page_height) + 40, 4000))
    page.set_viewport_size({"width": width, "height": full})
    _settle(page, extra_ms=600)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": height})
    return path


@contextmanager
def browser(chromium: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    if not Path(chromium).is_file():
        raise CheckFailed(
            f"{chromium} is missing: install Debian's Chromium (apt-get install -y chromium); "
            "this check never downloads a browser"
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


def _page(b):
    width, height = SCREENS[0]
    context = b.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


# -- the check ----------------------------------------------------------------------------------


def run_check(out: Path, chromium: str) -> list[Path]:
    """Seeded ledger; wrong password refused; certificate PASS and tampered FAIL; all pages."""
    shots: list[Path] = []
    password = secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="unlearnrec-e2e-") as tmp:
        seeded = seed_ledger(Path(tmp) / "home")
        _revoke_one(seeded.settings.database_url)
        env = {**seeded.env(), ENV_VAR: hash_password(password)}
        with dashboard_server(env, out / "server.log") as server, browser(chromium) as b:
            _say(f"dashboard up at {server.url} on a seeded ledger")
            page = _page(b)
            try:
                _check_pages(page, server.url, password, out, shots)
            except BaseException:
                page.screenshot(path=str(out / "failure.png"), full_page=True)
                _say(f"the page at the failure: {out / 'failure.png'}")
                raise
    return shots


def _revoke_one(url: str) -> None:
    """A revoked certificate (signed, never recorded), so its table is drawn and measured too;
    appended through the ledger, so the audit chain stays intact."""
    from unlearnrec.ledger import append_event, make_engine, session_scope

    engine = make_engine(url)
    with session_scope(engine) as session:
        append_event(
            session, actor="flow:process", action="certificate.revoked", entity="certificate",
            entity_id="cert-r7-t9-provisional",
            data={"certificate_id": "cert-r7-t9-provisional", "sha256": "ab" * 32,
                  "reason": "signed but never recorded in the ledger: the run stopped before "
                            "its commit, so the platform revoked and deleted the file"},
        )  # fmt: skip
    engine.dispose()


def _check_pages(page, url: str, password: str, out: Path, shots: list[Path]) -> None:
    """Each browser session below starts at a URL, so each logs in: sessions are per tab load.
    Cut-off tables are collected over every page and width, then reported together."""
    _login(page, url, password + "-wrong")
    page.get_by_text("Wrong password.").wait_for(timeout=TIMEOUT_MS)
    _settle(page)
    body = page.inner_text("body")
    leaked = [ext for ext in TICKETS if ext in body]
    if leaked or page.get_by_role("heading", name="Overview").count():
        raise CheckFailed(f"a wrong password showed data: {leaked}")
    shots.append(_shoot(page, out / "login-refused.png"))
    _say("wrong password refused, no data shown")

    deep = f"{url}/certificates?certificate={VALID_CERTIFICATE}"
    _login(page, deep, password)
    _title(page, "Certificates")
    verdict = page.get_by_test_id("stAlertContentSuccess")
    verdict.first.wait_for(timeout=TIMEOUT_MS)
    text = verdict.first.inner_text()
    if "PASS" not in text or VALID_CERTIFICATE not in text:
        raise CheckFailed(f"{VALID_CERTIFICATE}: expected PASS, the page says {text!r}")
    _settle(page)
    _no_exception(page, "certificates")
    _say(f"logged in; {VALID_CERTIFICATE} verified: PASS")
    cut_off = _screens(page, out, "certificate", shots)

    _login(page, f"{url}/certificates?certificate={TAMPERED_CERTIFICATE}", password)
    failed = page.get_by_test_id("stAlertContentError")
    failed.first.wait_for(timeout=TIMEOUT_MS)
    text = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    if not any("FAIL" in t and TAMPERED_CERTIFICATE in t for t in text):
        raise CheckFailed(f"{TAMPERED_CERTIFICATE}: expected FAIL, the page says {text}")
    _settle(page)
    _say(f"{TAMPERED_CERTIFICATE} (altered after signing): FAIL")
    cut_off += _screens(page, out, "certificate-tampered", shots)

    for name in ("overview", "tickets", "models"):
        _open_from_sidebar(page, name)
        _no_exception(page, name)
        if name == "overview":
            audit = page.get_by_text("hash chain intact")
            audit.first.wait_for(timeout=TIMEOUT_MS)
        cut_off += _screens(page, out, name, shots)
    _say("overview (audit trail intact), tickets and models pages render")
    if cut_off:
        raise CheckFailed("tables cut off at a laptop's width:\n  " + "\n  ".join(cut_off))


def _open_from_sidebar(page, name: str) -> None:
    title = PAGE_TITLES[name]
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    _title(page, title)
    _settle(page)


# -- the docs' screenshots ----------------------------------------------------------------------


def _snapshot_demo_ledger(src: Path, dest_dir: Path) -> str:
    """Copy the demo's SQLite ledger (and its WAL) and fold the WAL into the copy, so the
    dashboard reads a private copy and ``var/`` is never written (not even its -shm file)."""
    dest = dest_dir / "ledger.sqlite"
    shutil.copyfile(src, dest)
    wal = src.with_name(src.name + "-wal")
    if wal.exists():
        shutil.copyfile(wal, dest.with_name(dest.name + "-wal"))
    with sqlite3.connect(dest) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    return f"sqlite:///{dest}"


def run_screenshots(dest: Path, chromium: str, ledger: str) -> list[Path]:
    demo_db = ROOT / "var" / "ledger.sqlite"
    use_demo = ledger == "demo" or (ledger == "auto" and demo_db.exists())
    password = secrets.token_urlsafe(12)
    shots: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="unlearnrec-shots-") as tmp:
        if use_demo:
            if not demo_db.exists():
                raise CheckFailed(f"{demo_db} is missing: run `python3 dev.py demo` first")
            # Certificates and the public key stay where the demo wrote them (read only).
            env = {
                "UNLEARNREC_HOME": str(ROOT),
                "UNLEARNREC_DB_URL": _snapshot_demo_ledger(demo_db, Path(tmp)),
            }
            source = f"the demo's ledger ({demo_db}, copied)"
        else:
            env = seed_ledger(Path(tmp) / "home").env()
            source = "the seeded ledger (tests.dashboard.seed)"
        env[ENV_VAR] = hash_password(password)
        with dashboard_server(env, dest / ".server.log") as server, browser(chromium) as b:
            _say(f"dashboard up at {server.url} on {source}")
            page = _page(b)
            page.goto(server.url)
            page.get_by_label("Password", exact=True).wait_for(timeout=TIMEOUT_MS)
            _settle(page)
            shots.append(_shoot(page, dest / "login.png"))
            _login(page, server.url, password)
            _title(page, "Overview")
            _settle(page)
            shots.append(_shoot(page, dest / "overview.png"))
            cut_off = _screens(page, None, "overview", shots)
            for name in ("tickets", "certificates", "models"):
                _open_from_sidebar(page, name)
                _no_exception(page, name)
                shots.append(_shoot(page, dest / f"{name}.png"))
                cut_off += _screens(page, None, name, shots)
        (dest / ".server.log").unlink(missing_ok=True)
    if cut_off:  # the screenshots are written; the docs should not show a cut-off table
        raise CheckFailed("tables cut off at a laptop's width:\n  " + "\n  ".join(cut_off))
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.dashboard.e2e",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="artifacts/e2e", help="check screenshots and log")
    parser.add_argument("--screenshots", default=None, help="write the docs' page screenshots")
    parser.add_argument("--ledger", choices=["auto", "demo", "seed"], default="auto")
    parser.add_argument("--chromium", default=CHROMIUM, help="browser binary (%(default)s)")
    args = parser.parse_args(argv)
    from playwright.sync_api import Error as PlaywrightError

    t0 = time.monotonic()
    try:
        if args.screenshots:
            shots = run_screenshots(Path(args.screenshots), args.chromium, args.ledger)
        else:
            shots = run_check(Path(args.out), args.chromium)
    except (CheckFailed, PlaywrightError) as exc:
        _say(f"FAILED after {time.monotonic() - t0:.1f} s: {exc}")
        return 1
    for shot in shots:
        _say(f"screenshot {shot}")
    _say(f"OK in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

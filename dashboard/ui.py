"""Streamlit plumbing shared by the pages: the page registry, the login gate, the read-only
ledger connection with its failure messages, and cached loaders over ``queries``.

Caching: the engine is a ``cache_resource`` per URL; query results are ``cache_data`` with a
short TTL (``TTL_SECONDS``) keyed by the URL, so a page reflects the flows within seconds and the
sidebar's Refresh button clears them at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from dashboard import auth, queries
from unlearnrec.ledger import LedgerUnavailable, make_engine, safe_url
from unlearnrec.ledger.db import UPGRADE_COMMAND
from unlearnrec.records.settings import Settings, get_settings

HERE = Path(__file__).resolve().parent
TTL_SECONDS = 30

# url path -> (page script relative to dashboard/, title, icon)
PAGES: dict[str, tuple[str, str, str]] = {
    "overview": ("screens/overview.py", "Overview", ":material/dashboard:"),
    "tickets": ("screens/tickets.py", "Tickets", ":material/assignment:"),
    "certificates": ("screens/certificates.py", "Certificates", ":material/verified:"),
    "models": ("screens/models.py", "Models and data", ":material/model_training:"),
}


def page_file(name: str) -> str:
    """A page's script, relative to the main script (what ``st.page_link`` takes)."""
    return PAGES[name][0]


# -- login gate ---------------------------------------------------------------------------------


def _secrets() -> dict[str, Any]:
    """Streamlit secrets as a dict; empty when there is no secrets.toml (not an error)."""
    try:
        return {k: st.secrets[k] for k in st.secrets}
    except FileNotFoundError:  # StreamlitSecretNotFoundError: no or unparsable secrets file
        return {}


def is_authenticated() -> bool:
    return bool(st.session_state.get("authenticated"))


def login_gate() -> bool:
    """True when the visitor may see data; otherwise draws the login form (or explains how to
    configure a password) and returns False."""
    if is_authenticated():
        return True
    st.title("unlearnrec compliance dashboard")
    stored = auth.configured_hash(os.environ, _secrets())
    if stored is None:
        st.error(
            "No dashboard password is configured, so the dashboard shows no data. "
            "There is no default password."
        )
        st.markdown(
            f"Create a hash with `unlearnrec dashboard-password` and set it in the environment "
            f"as `{auth.ENV_VAR}` (or as `{auth.SECRET_NAME}` in `.streamlit/secrets.toml`), "
            "then restart the dashboard:"
        )
        st.code(
            "unlearnrec dashboard-password          # asks for the password, prints its hash\n"
            f"export {auth.ENV_VAR}='scrypt$16384$8$1$...'\n"
            "unlearnrec dashboard",
            language="bash",
        )
        return False
    try:
        auth.parse_hash(stored)
    except auth.PasswordHashError as exc:
        st.error(f"The configured dashboard password hash cannot be used: {exc}.")
        return False

    with st.columns([1, 2, 1])[1], st.form("login", clear_on_submit=True):
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in", type="primary")
    if not submitted:
        return False
    address = client_address()
    wait = auth.THROTTLE.retry_after(address, auth.ACCOUNT)
    if wait > 0:  # locked: the password is not even checked
        st.error(f"Too many wrong passwords: try again in {int(wait) + 1} s.")
        return False
    if password and auth.verify_password(password, stored):
        auth.THROTTLE.success(address, auth.ACCOUNT)
        st.session_state["authenticated"] = True
        st.rerun()
    locked = auth.THROTTLE.failure(address, auth.ACCOUNT)
    if locked:
        st.error(f"Wrong password. Too many wrong passwords: try again in {int(locked)} s.")
    else:
        st.error("Wrong password.")
    return False


def client_address() -> str | None:
    """The visitor's IP address as the server sees it (None for localhost). Behind a reverse
    proxy every visitor has the proxy's address: the account-wide limit still applies."""
    try:
        address = st.context.ip_address
    except (AttributeError, RuntimeError):
        return None
    return address if isinstance(address, str) and address else None


def sidebar(settings: Settings) -> None:
    with st.sidebar:
        st.caption(f"Ledger (read-only): `{shown_url(settings.database_url)}`")
        left, right = st.columns(2)
        if left.button("Refresh", icon=":material/refresh:", help="reload from the ledger"):
            st.cache_data.clear()
        if right.button("Log out", icon=":material/logout:"):
            st.session_state.clear()
            st.rerun()


# -- the ledger, read-only ----------------------------------------------------------------------


def settings() -> Settings:
    return get_settings()


def shown_url(url: str) -> str:
    """The URL with any password masked; never fails (a malformed URL is said to be one)."""
    try:
        return safe_url(url)
    except (SQLAlchemyError, ValueError):
        return "(a malformed database URL)"


def _reason(exc: BaseException, url: str) -> str:
    """The driver's first line, without the password even if a driver echoes it."""
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    try:
        password = make_url(url).password
    except (SQLAlchemyError, ValueError):
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text[:300]


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Engine:
    return make_engine(url, read_only=True)


@dataclass(frozen=True)
class Ledger:
    """What a page needs: the URL (the cache key), the settings, and the ledger's size."""

    url: str
    settings: Settings
    summary: queries.LedgerSummary


def open_ledger() -> Ledger | None:
    """The ledger, or None after saying (st.error / st.info) why not and what to do."""
    s = settings()
    url = s.database_url
    try:
        summary = load_summary(url)
    except LedgerUnavailable as exc:
        st.error(f"The ledger database is missing: {exc}.")
        st.info(
            "Run `unlearnrec demo` (it creates `var/ledger.sqlite`), start the dashboard from the "
            "project root or set `UNLEARNREC_HOME`, or point `UNLEARNREC_DB_URL` at the ledger."
        )
        return None
    except (SQLAlchemyError, ImportError) as exc:
        st.error(f"Cannot reach the ledger database `{shown_url(url)}`: {_reason(exc, url)}")
        st.info(
            "Check that the database server is running and reachable from this machine and "
            "that `UNLEARNREC_DB_URL` is right; then press Refresh in the sidebar."
        )
        return None
    if summary.out_of_date:
        st.error(
            f"The ledger `{shown_url(url)}` is at schema revision {summary.revision or 'none'}; "
            f"this dashboard reads revision {summary.head}. A ledger is evidence, so it is "
            f"upgraded on purpose: back it up, then run `{UPGRADE_COMMAND}`."
        )
        return None
    if not summary.tables:
        st.info(
            f"The database `{shown_url(url)}` holds no ledger yet (no tables). The flows create "
            "them on their first run: `unlearnrec demo` or `unlearnrec tickets submit FILE`."
        )
        return None
    if summary.empty:
        st.info(
            f"The ledger `{shown_url(url)}` is empty: no tickets, runs or versions yet. Submit "
            "tickets with `unlearnrec tickets submit FILE` (or drop files into `inbox/`), or run "
            "`unlearnrec demo`."
        )
        return None
    return Ledger(url, s, summary)


def render_page(title: str, body: Callable[[Ledger], None]) -> None:
    """Title, the ledger checks, then the page body; a database error mid-page becomes a
    message (never a traceback)."""
    st.title(title)
    ledger = open_ledger()
    if ledger is None:
        return
    try:
        body(ledger)
    except SQLAlchemyError as exc:
        st.error(f"Reading the ledger failed: {_reason(exc, ledger.url)}")
        st.info("Press Refresh in the sidebar to try again.")


# -- cached loaders -----------------------------------------------------------------------------


def _with_session(url: str, fn: Callable[[Session], Any]) -> Any:
    with Session(_engine(url)) as session:
        return fn(session)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_summary(url: str) -> queries.LedgerSummary:
    """Row counts, once per TTL rather than on every widget click (errors are not cached)."""
    return queries.summarise(_engine(url))


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_tickets(url: str) -> list[dict[str, Any]]:
    return _with_session(url, queries.tickets)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_runs(url: str) -> list[dict[str, Any]]:
    return _with_session(url, queries.runs)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_certificates(url: str) -> list[dict[str, Any]]:
    return _with_session(url, queries.certificates)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_revocations(url: str) -> list[dict[str, Any]]:
    return _with_session(url, queries.revocations)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_versions(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return _with_session(url, lambda s: (queries.dataset_versions(s), queries.model_versions(s)))


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_timeline(url: str, ticket_id: int, run_id: int | None) -> list[dict[str, Any]]:
    return _with_session(url, lambda s: queries.timeline(s, ticket_id, run_id))


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def certificate_verdicts(url: str, public_key: str, home: str) -> dict[str, str]:
    """certificate id -> PASS/FAIL for the list (the detail view re-checks live, uncached)."""
    return {
        row["certificate_id"]: queries.check_certificate(row, Path(public_key), Path(home)).verdict
        for row in load_certificates(url)
    }


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def audit_check(url: str, certificates_dir: str) -> dict[str, Any]:
    return _with_session(url, lambda s: queries.audit_check(s, Path(certificates_dir)))


# -- formatting ---------------------------------------------------------------------------------

# Every character that can open Markdown, a Streamlit directive (`:red[...]`, `:material/x:`),
# LaTeX (`$`), HTML or a GFM autolink (`http://`, `www.`, `a@b.c`); `-`, `,` and parentheses
# are left alone so ids and legal bases read as they are in the raw text too.
_MARKUP = re.compile(r"([\\`*_{}\[\]<>#+!|~$:@.&=^])")


def md(value: Any) -> str:
    """``value`` as literal text inside Markdown (st.error, st.markdown, link labels): every
    string that comes from tickets, certificates or runs goes through this, so a ticket id such
    as ``![x](http://example.com/a.png)`` shows as those characters, never as an image or a
    link. Line breaks become spaces (no headings or list items can be started)."""
    text = " ".join(str(value).split("\n"))
    text = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return _MARKUP.sub(r"\\\1", text)


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else queries.DASH


def stamp(value: datetime | None) -> str:
    """``when`` without the zone, for a table whose header says "(UTC)"."""
    return value.strftime("%Y-%m-%d %H:%M") if value else queries.DASH


def seconds(value: float | None) -> str:
    return f"{value:,.2f} s" if value is not None else queries.DASH


def speedup(value: float | None) -> str:
    return f"{value:,.1f}×" if value is not None else queries.DASH


def select_from_query(
    label: str,
    options: list[Any],
    param: str,
    *,
    key: str,
    default: Any = None,
    fmt: Callable[[Any], str] = str,
) -> Any:
    """A selectbox whose choice follows the ``?param=`` query parameter (so links and reloads
    land on the same item) and writes it back when the visitor picks another. Without either,
    it starts at ``default`` (the first option when that is not given)."""
    wanted = st.query_params.get(param)
    by_text = {str(o): o for o in options}
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]  # the filters removed the previous choice
    current = st.session_state.get(key)
    if wanted in by_text and (current is None or str(current) != wanted):
        st.session_state[key] = by_text[wanted]  # a link was followed: the link wins
    elif current is None and default in options:
        st.session_state[key] = default

    def remember() -> None:
        st.query_params[param] = str(st.session_state[key])

    return st.selectbox(label, options, format_func=fmt, key=key, on_change=remember)

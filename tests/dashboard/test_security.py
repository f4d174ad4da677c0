"""The dashboard under attack: Markdown in ticket data shows as text (no image fetched, no link
to click), and the wrong-password lockout holds across reloads, per client address and account,
with growing lockouts."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import auth, ui
from dashboard.auth import LoginThrottle
from tests.dashboard.conftest import APP, PASSWORD

markdown_it = pytest.importorskip("markdown_it")

IMAGE_ID = "![x](http://example.com/a.png)"
LINK_ID = "[link](http://x)"


def rendered_markup(text: str) -> list[str]:
    """Links, images, autolinks, HTML and raw URLs that ``text`` would render as Markdown."""
    parser = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
    found: list[str] = []
    for block in parser.parse(text):
        for tok in [block, *(block.children or [])]:
            if tok.type in ("link_open", "image", "html_inline", "html_block"):
                found.append(tok.type)
    # GFM autolink literals (Streamlit renders them): a bare scheme, www. or an e-mail address.
    found += [m for m in ("http://", "https://", "www.", "@example") if m in text]
    return found


def markdown_elements(at: AppTest) -> list[str]:
    """The source of every element Streamlit renders as Markdown."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning",
                 "info", "success"):  # fmt: skip
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [link.proto.label for link in at.page_link]
    parts += [m.label for m in at.metric]
    return parts


@pytest.fixture
def hostile_home(app_env, seeded, tmp_path):
    """The seeded ledger with Markdown in two overdue tickets' ids and in an escalated reason."""
    home = tmp_path / "home"
    shutil.copytree(seeded.home, home)
    db = home / "var" / "ledger.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE ticket SET external_id = ? WHERE external_id = 'DSAR-2003'", (IMAGE_ID,)
        )
        conn.execute(
            "UPDATE ticket SET external_id = ? WHERE external_id = 'DSAR-2004'", (LINK_ID,)
        )
        conn.execute(
            "UPDATE ticket SET reason = ? WHERE external_id = ?",
            ("see <img src=http://example.com/b.png> and :red[www.example.com]", IMAGE_ID),
        )
    app_env(f"sqlite:///{db}", home=home)
    return home


def test_markdown_in_ticket_ids_shows_as_text_on_the_overview(hostile_home, open_app):
    at = open_app("overview")
    overdue = next(e.value for e in at.error if "overdue" in e.value)
    assert ui.md(IMAGE_ID) in overdue and ui.md(LINK_ID) in overdue
    assert ui.md(IMAGE_ID) in at.warning[0].value  # the escalated list
    for text in markdown_elements(at):
        assert rendered_markup(text) == [], text


@pytest.mark.parametrize("external_id", [IMAGE_ID, LINK_ID])
def test_markdown_in_ticket_ids_and_reasons_shows_as_text_in_the_detail(
    hostile_home, open_app, external_id
):
    at = open_app("tickets", ticket=external_id)
    assert at.selectbox(key="ticket_pick").value == external_id  # options are plain text
    assert any(f"{ui.md(external_id)} is OVERDUE" in e.value for e in at.error)
    for text in markdown_elements(at):
        assert rendered_markup(text) == [], text


def test_md_escapes_markup_and_line_breaks():
    assert ui.md("DSAR-2003") == "DSAR-2003"  # ids read as they are
    assert ui.md("GDPR-17(1)(a)") == "GDPR-17(1)(a)"
    assert ui.md("a\n# heading\r\n- item") == "a \\# heading  - item"
    for hostile in (IMAGE_ID, LINK_ID, "<b>x</b>", "$x^2$", ":material/key: *b* `c`", "a@b.com"):
        assert rendered_markup(ui.md(hostile)) == [], hostile
        assert "*" not in ui.md(hostile).replace("\\*", "")


# -- the lockout --------------------------------------------------------------------------------


def _try(password: str) -> AppTest:
    """One login from a fresh browser session (a reload, a new tab, a script)."""
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input[0].input(password)
    at.button[0].click().run()
    assert not at.exception
    return at


def test_the_lockout_survives_reloads_and_refuses_even_the_right_password(app_env):
    """Five wrong passwords from five fresh sessions lock the client out: a sixth session with
    the right password is refused too (the password is not checked while locked)."""
    for _ in range(5):
        at = _try("wrong password")
    assert "Too many wrong passwords" in at.error[0].value
    at = _try(PASSWORD)
    assert "Too many wrong passwords" in at.error[0].value
    assert "authenticated" not in at.session_state


def test_the_lockout_is_per_client_address(app_env, monkeypatch):
    """A guesser at one address does not lock out the officer at another."""
    monkeypatch.setattr(ui, "client_address", lambda: "203.0.113.7")
    for _ in range(6):
        at = _try("wrong password")
    assert "Too many wrong passwords" in at.error[0].value
    monkeypatch.setattr(ui, "client_address", lambda: "198.51.100.2")
    at = _try(PASSWORD)
    assert [t.value for t in at.title] == ["Overview"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lockouts_double_and_a_right_password_clears_the_client():
    clock = Clock()
    t = LoginThrottle(max_failures=3, base_lock=30, max_lock=100, window=300, clock=clock)
    locks = []
    for _ in range(4):
        for _ in range(3):
            assert t.retry_after("a", "officer") == 0
            started = t.failure("a", "officer")
        locks.append(started)
        assert t.retry_after("a", "officer") == started
        clock.now += started  # wait it out
    assert locks == [30, 60, 100, 100]  # doubling, capped
    t.failure("a", "officer")
    t.success("a", "officer")
    assert t.retry_after("a", "officer") == 0
    assert t.failure("a", "officer") == 0  # a fresh start: one failure locks nothing


def test_failures_outside_the_window_do_not_count():
    clock = Clock()
    t = LoginThrottle(max_failures=3, window=60, clock=clock)
    for _ in range(5):
        assert t.failure("a", "officer") == 0
        clock.now += 31  # two failures per window at most
    assert t.retry_after("a", "officer") == 0


def test_guesses_spread_over_addresses_lock_the_account():
    clock = Clock()
    t = LoginThrottle(max_failures=5, account_max_failures=10, clock=clock)
    for n in range(10):
        t.failure(f"10.0.0.{n}", "officer")
    assert t.retry_after("10.0.0.99", "officer") == 30  # a new address is held too
    assert t.retry_after("10.0.0.99", "other-account") == 0


def test_the_app_uses_the_process_wide_throttle():
    assert isinstance(auth.THROTTLE, LoginThrottle)


def test_a_ticket_row_edited_to_certified_shows_on_the_overview(
    app_env, open_app, seeded, tmp_path
):
    """The hash chain is intact, but the trail replayed against the rows names the ticket."""
    home = tmp_path / "home"
    shutil.copytree(seeded.home, home)
    db = home / "var" / "ledger.sqlite"
    with sqlite3.connect(db) as conn:
        (ticket_id,) = conn.execute(
            "SELECT id FROM ticket WHERE external_id = 'DSAR-2011'"
        ).fetchone()
        conn.execute("UPDATE ticket SET status = 'certified' WHERE id = ?", (ticket_id,))
    app_env(f"sqlite:///{db}", home=home)
    at = open_app("overview")
    broken = next(e.value for e in at.error if "Audit trail broken" in e.value)
    said = f"ticket {ticket_id}: status is certified in the table, the audit trail says rejected"
    assert ui.md(said) in broken  # escaped like every string from the ledger

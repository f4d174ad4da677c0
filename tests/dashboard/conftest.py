"""Dashboard fixtures: one seeded ledger per session (``tests.dashboard.seed``: no ML), its
password, and ``open_app`` to run a page with ``streamlit.testing.v1.AppTest``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.auth import ENV_VAR, THROTTLE, hash_password
from tests.dashboard.seed import SeededLedger, seed_ledger

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PASSWORD = "correct horse battery staple"
SETTINGS_ENV = (
    "UNLEARNREC_HOME",
    "UNLEARNREC_DB_URL",
    "UNLEARNREC_VAR_DIR",
    "UNLEARNREC_SECRETS_DIR",
)


@pytest.fixture(scope="session")
def seeded(tmp_path_factory) -> SeededLedger:
    return seed_ledger(tmp_path_factory.mktemp("dashboard") / "home")


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def app_env(monkeypatch, seeded, password_hash) -> Callable[..., None]:
    """Point the app at a ledger (the seeded one by default) with the test password set."""

    def configure(
        db_url: str | None = None, *, home: Path | None = None, hashed: str | None = password_hash
    ) -> None:
        THROTTLE.reset()  # the lockout is per server process: no test inherits another's
        for name in (*SETTINGS_ENV, ENV_VAR):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("UNLEARNREC_HOME", str(home or seeded.home))
        monkeypatch.setenv("UNLEARNREC_DB_URL", db_url or seeded.db_url)
        if hashed is not None:
            monkeypatch.setenv(ENV_VAR, hashed)

    configure()
    return configure


@pytest.fixture
def open_app(app_env) -> Callable[..., AppTest]:
    """Run one page, logged in (the login itself is tested on its own), with query params."""

    def run(page: str = "overview", **query: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=30)
        at.session_state["authenticated"] = True
        for key, value in query.items():
            at.query_params[key] = value
        if page != "overview":
            at.switch_page(f"screens/{page}.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return run


def page_text(at: AppTest) -> str:
    """Everything a visitor can read on the page: texts, alerts, metrics, tables, links."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning",
                 "info", "success", "code", "text", "json"):  # fmt: skip
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += [d.value.to_csv() for d in at.dataframe]
    parts += [f"{link.value} {link.proto.query_string}" for link in at.page_link]
    parts += [str(s.value) for s in at.selectbox]
    return "\n".join(parts)


def frame_with(at: AppTest, column: str):
    """The first table on the page that has ``column``."""
    for d in at.dataframe:
        if column in d.value.columns:
            return d.value
    raise AssertionError(
        f"no table with a {column!r} column: {[list(d.value.columns) for d in at.dataframe]}"
    )

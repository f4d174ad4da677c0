"""The compliance dashboard's entry point: ``streamlit run dashboard/app.py`` (what
``unlearnrec dashboard`` does). ``main()`` sets the page up, registers the pages, keeps everything
behind the login gate, then runs the page the visitor chose."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import dashboard  # noqa: F401  (installed with the project)
except ImportError:  # a plain checkout: streamlit puts only dashboard/ itself on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st

from dashboard import ui


def main() -> None:
    st.set_page_config(
        page_title="unlearnrec · compliance",
        page_icon=":material/shield:",
        layout="wide",
    )
    authed = ui.is_authenticated()
    pages = [
        st.Page(ui.HERE / script, title=title, icon=icon, url_path=url, default=url == "overview")
        for url, (script, title, icon) in ui.PAGES.items()
    ]
    # Registered even before login, so a deep link (/certificates?certificate=...) survives it.
    page = st.navigation(pages, position="sidebar" if authed else "hidden")
    if not ui.login_gate():
        return
    ui.sidebar(ui.settings())
    page.run()


if __name__ == "__main__":
    main()

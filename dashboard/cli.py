"""``unlearnrec dashboard`` (start the Streamlit app) and ``unlearnrec dashboard-password``
(make the password hash it checks), registered as an ``unlearnrec.commands`` entry point: the
core CLI offers them without importing ``dashboard``. Nothing heavy is imported at parse time:
Streamlit and the app load only inside the commands."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PASSWORD_ENV = "UNLEARNREC_DASHBOARD_PASSWORD_HASH"


def streamlit_command(app: Path, *, host: str, port: int) -> list[str]:
    """``streamlit run`` for the app: headless, bound to ``host``, no usage statistics, no
    file watching, and no tracebacks shown to visitors (they go to the server log)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless",
        "true",
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--client.showErrorDetails",
        "none",
        "--client.toolbarMode",
        "minimal",
    ]


def _app_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("dashboard")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the dashboard package is not installed (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))) / "app.py"


def cmd_dashboard(args: argparse.Namespace) -> int:
    from unlearnrec.ledger.db import safe_url
    from unlearnrec.records.settings import get_settings

    if args.home and not Path(args.home).is_dir():
        print(f"error: --home {args.home} is not a folder", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if args.home:
        env["UNLEARNREC_HOME"] = str(Path(args.home).resolve())
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    env.setdefault("DO_NOT_TRACK", "1")
    settings = get_settings(**({"home": Path(env["UNLEARNREC_HOME"])} if args.home else {}))
    if not env.get(PASSWORD_ENV):
        print(
            f"note: {PASSWORD_ENV} is not set: unless .streamlit/secrets.toml sets "
            "password_hash, the dashboard shows no data (make a hash with "
            "`unlearnrec dashboard-password`)",
            file=sys.stderr,
        )
    print(
        f"dashboard: http://{args.host}:{args.port}  ledger (read-only): "
        f"{safe_url(settings.database_url)}  (Ctrl-C stops it)",
        file=sys.stderr,
        flush=True,
    )
    cmd = streamlit_command(_app_path(), host=args.host, port=args.port)
    sys.stdout.flush()
    os.execve(cmd[0], cmd, env)  # the server replaces this process: signals reach it directly
    return 0  # pragma: no cover


def cmd_dashboard_password(args: argparse.Namespace) -> int:
    import getpass

    from dashboard.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Dashboard password: ")
        if getpass.getpass("Again: ") != password:
            print("error: the two passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        hashed = hash_password(password)
    except ValueError as exc:  # too short: a usage error, nothing written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(hashed)
    if sys.stdin.isatty():
        print(
            f"\nset it where the dashboard runs:\n  export {PASSWORD_ENV}='{hashed}'",
            file=sys.stderr,
        )
    return 0


def _port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not in 1..65535")
    return port


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard",
        help="start the compliance dashboard (Streamlit, reads the ledger read-only)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=_port, default=8501, help="port (default: %(default)s)")
    p.add_argument(
        "--home",
        default=None,
        help="project root (default: UNLEARNREC_HOME or the working directory)",
    )
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser(
        "dashboard-password",
        help="hash a dashboard password (asks for it, or reads one line from stdin)",
    )
    p.set_defaults(func=cmd_dashboard_password)

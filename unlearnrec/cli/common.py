"""What every ``unlearnrec`` command group shares: exit statuses, the usage error, ``--device``
and ``--set`` parsing, progress and log lines on stderr, quiet third-party telemetry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_PARAMS = "params.yaml"

# Exit status: 0 done, 1 failed (bad data, a check that failed, an unreachable ledger), 2 usage
# (a bad argument, said before any work, as argparse does).
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Third-party telemetry off unless the caller chose otherwise (the values dev.py sets): set at
# start, before Prefect, DVC, Great Expectations or Streamlit is imported.
QUIET_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    # and Prefect's local server gets time to start on a busy machine (its default is 20 s)
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


class UsageError(SystemExit):
    """A bad argument (an unknown filter value, a missing input file named on the command line),
    raised before any work: ``main`` prints ``error: MESSAGE`` and the exit status is 2."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_USAGE)
        self.message = message

    def __str__(self) -> str:
        return self.message


def device_arg(text: str) -> str:
    """``--device``: auto, cpu, cuda, cuda:N or mps, checked when the arguments are parsed."""
    import re

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: use auto, cpu, cuda, cuda:N or mps")
    return text


def quiet_telemetry() -> None:
    import os

    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _params(path: str | None, overrides: list[str] | None = None):
    """params.yaml (when present) with ``--set section.key=value`` overrides applied."""
    import yaml

    from unlearnrec.config import params_from_dict

    raw: dict[str, Any] = {}
    if path and Path(path).exists():
        raw = yaml.safe_load(Path(path).read_text()) or {}
    elif path and path != DEFAULT_PARAMS:
        raise UsageError(f"params file {path} not found")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        section, dot, field = key.partition(".")
        if not sep or not dot:
            raise UsageError(f"--set expects section.key=value, got {item!r}")
        raw.setdefault(section, {})[field] = yaml.safe_load(value)
    return params_from_dict(raw), raw


def _device(name: str):
    from unlearnrec.training.loop import resolve_device

    return resolve_device(name)


def _progress(desc: str, total: int, unit: str = "epoch"):
    """An epoch (or ``unit``) callback that drives a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, mininterval=1.0)

    def on_epoch(record: dict[str, Any]) -> None:
        bar.update(1)
        post = {"loss": f"{record['loss']:.4f}"}
        post.update(
            {
                k.replace("valid_", ""): f"{v:.4f}"
                for k, v in record.items()
                if k.startswith("valid_recall")
            }
        )
        bar.set_postfix(post, refresh=False)

    return on_epoch, bar


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)

"""Fault injection for the crash tests: ``UNLEARNREC_CRASH_POINT=<name>`` kills the process at
that point, between a side effect (files, the DVC store) and the ledger commit."""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    """Fault injection for the crash tests: ``UNLEARNREC_CRASH_POINT=<name>`` kills the process
    with SIGKILL here, between a side effect (files, DVC store) and the ledger commit."""
    if os.environ.get("UNLEARNREC_CRASH_POINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)

"""The ``unlearnrec`` command line (``app``: the ML commands, the parser and ``main``;
``compliance``: tickets, certificates, the audit chain and the ledger; ``init_data``: ``init``;
``common``: what they share). Other packages add their groups through the
``unlearnrec.commands`` entry points; the core imports none of them."""

from unlearnrec.cli.app import build_parser, main
from unlearnrec.cli.common import QUIET_DEFAULTS, UsageError, _log, _params, _progress, device_arg

__all__ = [
    "QUIET_DEFAULTS",
    "UsageError",
    "_log",
    "_params",
    "_progress",
    "build_parser",
    "device_arg",
    "main",
]

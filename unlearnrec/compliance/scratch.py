"""Scratch folders under ``var/``: removed on every exit path, and swept when a run starts.

Scratch folders hold copies of dataset versions (interactions of people whose erasure may be
certified later) and model files. ``scratch_dir`` removes its folder in a ``finally``; a process
killed outright (``kill -9``, out of memory) cannot, so every run starts with :func:`sweep`,
which removes the scratch folders of processes that no longer exist. A folder's name carries its
creator's pid (``unlearnrec-tmp-<pid>-<label>-<random>``), so a sweep never touches the folder of
a run still working. Folders left by versions before this one (``tmp<random>``,
``unlearnrec-dataset-<random>``, ``unlearnrec-model-<random>``) name no process; nothing creates
them any more, so they are swept too.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("unlearnrec.scratch")

PREFIX = "unlearnrec-tmp-"
_LEGACY = re.compile(r"^(tmp|unlearnrec-(dataset|model)-)[a-z0-9_]{8}$")


@contextmanager
def scratch_dir(var: Path, label: str = "work") -> Iterator[Path]:
    """A fresh folder under ``var`` for the ``with`` block, removed however the block ends."""
    var.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-{label}-", dir=var))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftovers(var: Path) -> list[Path]:
    """Scratch folders under ``var`` whose creator is gone (or unknown: the old names)."""
    if not var.is_dir():
        return []
    out = []
    for entry in sorted(var.iterdir()):
        if entry.is_symlink() or not entry.is_dir():
            continue
        if entry.name.startswith(PREFIX):
            pid = entry.name[len(PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                out.append(entry)
        elif _LEGACY.match(entry.name):
            out.append(entry)
    return out


def sweep(var: Path) -> list[Path]:
    """Remove the leftovers of killed runs; returns what was removed."""
    removed = []
    for path in leftovers(var):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    if removed:
        log.warning("removed %d scratch folder(s) left by killed runs", len(removed))
    return removed

"""The versioned store of dataset and model versions: a real DVC repository (``dvc init
--no-scm``) under ``var/store`` with a remote (a local folder by default).

Layout:
- ``datasets/current/`` (+ ``current.dvc``): the dataset the platform serves from;
- ``models/current/`` (+ ``current.dvc``): the model in production and its encoder;
- ``versions/<kind>-<md5>.dvc``: one pointer per retained version, so ``dvc gc --workspace``
  keeps exactly those objects. Removing a pointer and collecting garbage in the cache and the
  remote *purges* a version (erased interactions leave the storage, not only the workspace).

Every version is fetched back by its DVC hash with ``fetch``. DVC runs as a subprocess of the
running interpreter (``python -m dvc``), quietly and without analytics.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from unlearnrec.files import atomic_write_text


class StoreError(RuntimeError):
    pass


def dvc_timeout() -> float:
    """Seconds a DVC command may run (``UNLEARNREC_DVC_TIMEOUT_SECONDS``, default 600)."""
    try:
        value = float(os.environ.get("UNLEARNREC_DVC_TIMEOUT_SECONDS", "600"))
    except ValueError:
        value = 600.0
    return value if value > 0 else 600.0


def run_dvc(cwd: Path, *args: str, where: str = "") -> str:
    """``dvc ARGS`` in ``cwd`` as a subprocess of the running interpreter (``python -m dvc``),
    without analytics, within ``dvc_timeout()``; its stdout, or ``StoreError`` with the last
    lines of its output. ``where`` names the repository in messages (e.g. "in the project")."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    limit = dvc_timeout()
    command = " ".join(["dvc", *args])
    place = f" {where}" if where else ""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=limit,
        )
    except subprocess.TimeoutExpired:
        raise StoreError(
            f"{command} did not finish within {limit:g} s{place} (a hung remote or lock? raise "
            "UNLEARNREC_DVC_TIMEOUT_SECONDS if the store is just slow)"
        ) from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise StoreError(f"{command} failed{place}: {' | '.join(tail)}")
    return proc.stdout


@dataclass(frozen=True)
class StoredVersion:
    kind: str  # "dataset" | "model"
    md5: str  # DVC's hash of the directory (ends in ".dir")
    pointer: Path  # versions/<kind>-<md5>.dvc


class DvcStore:
    def __init__(self, root: Path, remote_url: str | Path):
        self.root = Path(root)
        self.remote_url = str(remote_url)

    # -- plumbing -----------------------------------------------------------------------------
    def _dvc(self, *args: str) -> str:
        return run_dvc(self.root, *args)

    def ensure(self) -> DvcStore:
        """Create the DVC repository and its default remote if they do not exist yet."""
        if not (self.root / ".dvc").is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            self._dvc("init", "--no-scm", "-q")
            self._dvc("config", "core.analytics", "false")
            self._dvc("remote", "add", "-d", "store", self.remote_url)
        (self.root / "versions").mkdir(exist_ok=True)
        self._make_private()
        self._recover()
        return self

    def _make_private(self) -> None:
        """The store and a local remote hold every dataset version (personal data): 0700, so
        nobody else can reach their files (DVC's cache files are 0444 inside)."""
        folders = [self.root]
        if "://" not in self.remote_url:
            remote = Path(self.remote_url)
            if not remote.is_absolute():  # dvc ran in the store: relative to it
                remote = self.root / remote
            remote.mkdir(mode=0o700, parents=True, exist_ok=True)
            folders.append(remote)
        for folder in folders:
            with contextlib.suppress(PermissionError):
                os.chmod(folder, 0o700)

    def _recover(self) -> None:
        """Finish or undo a swap a crash interrupted (see ``_swap_in``)."""
        for area in ("datasets", "models"):
            base = self.root / area
            if not base.is_dir():
                continue
            current = base / "current"
            olds = sorted(base.glob(".old-*"))
            if not current.exists() and olds:
                olds[-1].rename(current)  # the new folder never made it: restore the old one
            for leftover in [*base.glob(".old-*"), *base.glob(".staging-*")]:
                shutil.rmtree(leftover, ignore_errors=True)

    @staticmethod
    def read_md5(dvc_file: Path) -> str:
        outs = yaml.safe_load(dvc_file.read_text())["outs"]
        return str(outs[0]["md5"])

    def _swap_in(self, area: str, source: Path, name: str) -> Path:
        """Copy ``source`` (a folder) into ``<area>/<name>`` so that a crash leaves either the
        old or the new folder, never a half-written one."""
        base = self.root / area
        base.mkdir(parents=True, exist_ok=True)
        staging = base / f".staging-{uuid.uuid4().hex[:8]}"
        shutil.copytree(source, staging)
        current = base / name
        old = base / f".old-{uuid.uuid4().hex[:8]}"
        if current.exists():
            current.rename(old)
        staging.rename(current)
        shutil.rmtree(old, ignore_errors=True)
        return current

    def _pin(self, kind: str, md5: str) -> Path:
        name = f"{kind}-{md5.removesuffix('.dir')}"
        pointer = self.root / "versions" / f"{name}.dvc"
        atomic_write_text(
            pointer,
            yaml.safe_dump({"outs": [{"md5": md5, "path": name, "hash": "md5"}]}, sort_keys=False),
        )
        return pointer

    # -- versions -----------------------------------------------------------------------------
    def add(
        self, kind: str, source: Path, *, name: str = "current", push: bool = True
    ) -> StoredVersion:
        """Make ``source`` (a folder) the ``kind`` version called ``name`` (``current``: the one
        in service), track it with DVC, pin it and push it to the remote."""
        if kind not in ("dataset", "model"):
            raise ValueError(f"unknown kind {kind!r}")
        area = f"{kind}s"
        self._swap_in(area, source, name)
        self._dvc("add", "-q", f"{area}/{name}")
        md5 = self.read_md5(self.root / area / f"{name}.dvc")
        pointer = self._pin(kind, md5)
        if push:
            self._dvc("push", "-q", f"{area}/{name}.dvc")
        return StoredVersion(kind, md5, pointer)

    def current(self, kind: str) -> Path:
        return self.root / f"{kind}s" / "current"

    def fetch(self, kind: str, md5: str, dest: Path) -> Path:
        """Materialise version ``md5`` into ``dest`` (from the cache, else the remote)."""
        pointer = self.root / "versions" / f"{kind}-{md5.removesuffix('.dir')}.dvc"
        temporary = not pointer.exists()
        if temporary:
            pointer = self._pin(kind, md5)
        try:
            target = pointer.with_suffix("")
            try:
                self._dvc("checkout", "-q", str(pointer.relative_to(self.root)))
            except StoreError:
                self._dvc("pull", "-q", str(pointer.relative_to(self.root)))
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(target, dest)
            shutil.rmtree(target, ignore_errors=True)
            return dest
        except StoreError as exc:
            raise StoreError(f"{kind} version {md5} is not in the store (purged?): {exc}") from None
        finally:
            if temporary:
                pointer.unlink(missing_ok=True)

    def pinned(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "versions").glob("*.dvc"))

    def purge(self, versions: Sequence[tuple[str, str]]) -> list[str]:
        """Unpin the listed (kind, md5) versions and garbage-collect the cache and the remote:
        their objects are deleted unless a retained version shares them. Returns the names."""
        removed = []
        for kind, md5 in versions:
            pointer = self.root / "versions" / f"{kind}-{md5.removesuffix('.dir')}.dvc"
            if pointer.exists():
                pointer.unlink()
                removed.append(pointer.stem)
        if removed:
            self._dvc("gc", "--workspace", "--cloud", "--remote", "store", "--force", "-q")
        return removed

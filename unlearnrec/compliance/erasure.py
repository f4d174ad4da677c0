"""Erased data never comes back: one data world, tombstones, and a check over every copy.

The platform keeps interactions in more places than its current dataset version:

- the DVC store (``var/store``): every pinned dataset version, its cache and its remote;
- the DVC pipeline's input (``params.yaml``'s ``data.path``, ``data/synthetic`` by default,
  tracked by ``data.dvc``), the project's DVC cache and its local remotes (the project's is
  ``~/.cache/unlearnrec/dvc-remote``), and the pipeline's outputs computed from that input
  (``artifacts/prepared/splits.npz``, the base model and its encoder);
- the ticket files in ``inbox/processed/`` (raw subject ids);
- model versions trained on, or derived from, data that held erased pairs.

After a certified erasure:

- ``tombstone`` replaces an erased user's raw id in the id map (``user_list.txt``) by
  ``erased:<pseudonym>``: internal ids (model rows) stay where they are, the raw id is gone, and an
  erased user's id arriving again in a later import is recognised by its pseudonym;
- ``sync_pipeline`` makes the pipeline's input the platform's current dataset version (``dvc
  repro`` then trains on it), removes the pipeline outputs computed from the old input, and
  deletes the old input's and outputs' objects, and any other version of the input or splits
  holding erased data, from the project's DVC cache and local remotes;
  an input changed outside the platform (a new import) is not overwritten: erased users found in
  it are *flagged* (``erasure.reappeared``), never silently re-added;
- ``purge_processed_files`` deletes processed ticket files once none of their tickets is open
  (the ledger keeps the record: pseudonym, counts and hashes);
- ``lifecycle.apply_retention`` purges old dataset versions and superseded models;
  ``record_purged_models`` marks a model row ``purged`` once the store no longer holds its files;
- ``check_erased`` scans every copy above for an erased pair (or an erased user's raw id) and
  reports each one; ``unlearnrec audit check-erased`` exits non-zero when one is found.

An erasure counts once its ticket is certified. Store versions a pending final check still needs
(a provisional certificate's run) are reported as *held*, not as failures: they leave with the
final certificate (``apply_retention``). A legal hold (``retention.purge_erased_versions: false``)
keeps every copy and is reported as such.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from sqlmodel import Session, col, select

from unlearnrec.compliance.platform import Platform
from unlearnrec.compliance.scratch import scratch_dir
from unlearnrec.compliance.store import run_dvc
from unlearnrec.compliance.versions import current_dataset, production_model
from unlearnrec.data.splits import Splits
from unlearnrec.ledger import (
    Certificate,
    DatasetVersion,
    ModelVersion,
    Ticket,
    TicketStatus,
    UnlearningRun,
    append_event,
    session_scope,
    utcnow,
)

log = logging.getLogger("unlearnrec.erasure")

TOMBSTONE = "erased:"  # an id map entry ``erased:<pseudonym>`` replaces an erased user's raw id
# Pipeline outputs computed from the pipeline's input, when the home has no dvc.yaml to say so.
DEFAULT_PIPELINE_OUTS = (
    "artifacts/prepared/splits.npz",
    "artifacts/base/model.pt",
    "artifacts/encoder/encoder.pt",
)
SYNC_MARKER = "pipeline-data.json"  # under var/: which dataset version the pipeline input holds
_LABEL = re.compile(r"^([A-Za-z0-9._-]+)[#:]")


# -- what was erased ----------------------------------------------------------------------------
@dataclass
class Erased:
    """What certified tickets erased, users pseudonymised: whole users, taken-down items and
    (user, item) pairs."""

    users: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)
    pairs: set[tuple[str, str]] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.users or self.items or self.pairs)


def erased_by_certified(session: Session) -> Erased:
    out = Erased()
    for t in session.exec(select(Ticket).where(Ticket.status == TicketStatus.CERTIFIED)):
        if t.kind == "erase_user" and t.subject_pseudonym:
            out.users.add(t.subject_pseudonym)
        elif t.kind == "take_down_item" and t.items:
            out.items.add(str(t.items[0]))
        elif t.kind == "erase_interactions" and t.subject_pseudonym:
            out.pairs |= {(t.subject_pseudonym, str(i)) for i in t.items}
    return out


def tombstone(files: Splits, users: Iterable[int], pseudonymise) -> Splits:
    """``files`` with the raw ids of ``users`` (internal ids) replaced by tombstones."""
    user_ids = np.array(files.user_ids, dtype=object, copy=True)
    for u in users:
        raw = str(user_ids[u])
        if not raw.startswith(TOMBSTONE):
            user_ids[u] = TOMBSTONE + pseudonymise(raw)
    return files.with_ids(user_ids, files.item_ids)


def tombstoned(user_ids: Iterable) -> set[str]:
    """The pseudonyms of the tombstoned entries of an id map."""
    return {str(u)[len(TOMBSTONE) :] for u in user_ids if str(u).startswith(TOMBSTONE)}


def pseudonyms_of(user_ids: Iterable, pseudonymise) -> np.ndarray:
    """Each id map entry as a pseudonym (a tombstone already is one)."""
    return np.array(
        [
            str(u)[len(TOMBSTONE) :] if str(u).startswith(TOMBSTONE) else pseudonymise(str(u))
            for u in user_ids
        ],
        dtype=object,
    )


def erased_pairs_in(
    user_ids, item_ids, pairs: np.ndarray, erased: Erased, pseudonymise
) -> tuple[int, int]:
    """(erased pairs among ``pairs``, erased users' raw ids in the id map)."""
    raw_erased = sum(
        1
        for u in user_ids
        if not str(u).startswith(TOMBSTONE) and pseudonymise(str(u)) in erased.users
    )
    if len(pairs) == 0 or not erased:
        return 0, raw_erased
    ps = pseudonyms_of(user_ids, pseudonymise)
    items = np.array([str(i) for i in item_ids], dtype=object)
    pairs = pairs[(pairs[:, 0] < len(ps)) & (pairs[:, 1] < len(items))]
    bad_user = np.array([p in erased.users for p in ps], dtype=bool)
    bad_item = np.array([i in erased.items for i in items], dtype=bool)
    mask = bad_user[pairs[:, 0]] | bad_item[pairs[:, 1]]
    if erased.pairs:
        pair_users = {u for u, _ in erased.pairs}
        for k in np.flatnonzero(~mask):
            u, i = pairs[k]
            if ps[u] in pair_users and (ps[u], items[i]) in erased.pairs:
                mask[k] = True
    return int(mask.sum()), raw_erased


# -- the check ----------------------------------------------------------------------------------
@dataclass
class Finding:
    where: str  # a copy: a folder, a DVC object, a file
    what: str  # what it holds, in words (counts, never ids)
    held: bool = False  # kept on purpose (a pending final check, a legal hold)


@dataclass
class ErasureReport:
    findings: list[Finding] = field(default_factory=list)
    scanned: int = 0  # copies looked at

    @property
    def ok(self) -> bool:
        return not [f for f in self.findings if not f.held]

    def lines(self) -> list[str]:
        return [f"{'held' if f.held else 'FOUND'}: {f.where}: {f.what}" for f in self.findings]


def _dvc_objects(root: Path) -> Path:
    return root / "files" / "md5"


def _object(root: Path, md5: str) -> Path:
    return _dvc_objects(root) / md5[:2] / md5[2:]


def _dir_objects(root: Path) -> Iterator[tuple[str, Path]]:
    base = _dvc_objects(root)
    if base.is_dir():
        for path in sorted(base.glob("*/*.dir")):
            yield path.parent.name + path.name, path


def _datasets_from_dir_object(
    root: Path, dir_object: Path, tmp: Path
) -> Iterator[tuple[str, Splits]]:
    """The datasets a DVC ``.dir`` object lists (each folder in it holding ``train.txt`` and
    ``user_list.txt``), assembled from its objects; what cannot be read (objects purged) is
    skipped."""
    try:
        entries = json.loads(dir_object.read_text())
    except (OSError, ValueError):
        return
    names = {
        str(e["relpath"]): str(e["md5"])
        for e in entries
        if isinstance(e, dict) and "relpath" in e and "md5" in e
    }
    prefixes = {n[: -len("train.txt")] for n in names if n.endswith("train.txt")}
    for n, prefix in enumerate(sorted(p for p in prefixes if f"{p}user_list.txt" in names)):
        folder = tmp / f"{dir_object.name}-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("train.txt", "test.txt", "valid.txt", "user_list.txt", "item_list.txt"):
            md5 = names.get(prefix + name)
            if md5 is not None and _object(root, md5).is_file():
                shutil.copyfile(_object(root, md5), folder / name)
        try:
            yield prefix.rstrip("/"), Splits.read(folder)
        except Exception:  # an object it names is gone (purged): nothing to read
            continue


def _scan_dataset(
    report: ErasureReport, where: str, files: Splits, erased: Erased, pseudonymise, held
) -> None:
    report.scanned += 1
    pairs, raw = erased_pairs_in(
        files.user_ids, files.item_ids, files.all_pairs(), erased, pseudonymise
    )
    if pairs or raw:
        report.findings.append(
            Finding(where, f"{pairs} erased pair(s), {raw} erased user id(s) in its id map", held)
        )


def _dvc_config(dvc_dir: Path) -> list[configparser.ConfigParser]:
    """``.dvc/config`` then ``config.local`` (which overrides it), those that parse."""
    out = []
    for name in ("config", "config.local"):
        path = dvc_dir / name
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            parser.read_string(path.read_text())
        except (configparser.Error, OSError):
            continue
        out.append(parser)
    return out


def _config_path(dvc_dir: Path, value: str) -> Path:
    """A path in DVC's config: ``~`` is the user's home (DVC expands it too); relative ones are
    relative to the ``.dvc`` folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (dvc_dir / path).resolve()


def local_remotes(dvc_dir: Path) -> list[Path]:
    """The local (filesystem) remotes a DVC repository's config names (``.dvc/config`` and
    ``config.local``; the project's is ``~/.cache/unlearnrec/dvc-remote``, outside the clone and
    shared by every clone of the user's); URLs with a scheme (s3://, ssh://)
    are skipped: the platform cannot reach into them here, their own retention applies (see
    docs/workflow.md)."""
    out = []
    for parser in _dvc_config(dvc_dir):
        for section in parser.sections():
            if not section.strip("'\"").startswith("remote"):
                continue
            url = parser.get(section, "url", fallback="")
            if url and "://" not in url:
                out.append(_config_path(dvc_dir, url))
    return sorted(set(out))


def cache_dir(dvc_dir: Path) -> Path:
    """The repository's DVC cache: ``.dvc/cache`` unless the config moves it (``cache.dir``)."""
    found = dvc_dir / "cache"
    for parser in _dvc_config(dvc_dir):
        value = parser.get("cache", "dir", fallback="") if parser.has_section("cache") else ""
        if value and "://" not in value:
            found = _config_path(dvc_dir, value)
    return found


def dvc_roots(dvc_dir: Path) -> list[Path]:
    """Every local place a DVC repository keeps objects: its cache, then its local remotes."""
    return [cache_dir(dvc_dir), *local_remotes(dvc_dir)]


def _store_roots(platform: Platform) -> list[Path]:
    return dvc_roots(platform.store.root / ".dvc")


def _needed(session: Session) -> tuple[set[int], set[int]]:
    """Dataset and model versions a pending final check or an open run still needs."""
    runs = {
        c.run_id
        for c in session.exec(select(Certificate).where(Certificate.status == "provisional"))
    }
    ds: set[int] = set()
    models: set[int] = set()
    for run in session.exec(select(UnlearningRun)):
        if run.id in runs or run.status != "succeeded":
            ds |= {i for i in (run.dataset_before_id, run.dataset_after_id) if i is not None}
            models |= {i for i in (run.model_before_id, run.model_after_id) if i is not None}
    return ds, models


def check_erased(platform: Platform) -> ErasureReport:
    """Scan every copy the platform keeps for what certified tickets erased."""
    report = ErasureReport()
    hold = not platform.policy.retention.purge_erased_versions
    with session_scope(platform.engine) as session:
        erased = erased_by_certified(session)
        needed_ds, needed_models = _needed(session)
        held_md5 = {
            d.dvc_md5 for d in session.exec(select(DatasetVersion)) if d.id in needed_ds or hold
        }
        models = list(session.exec(select(ModelVersion)))
        prod = production_model(session)
        current = current_dataset(session)
    if not erased:
        return report
    ps = platform.pseudonymise
    with scratch_dir(platform.settings.var, "check") as tmp:
        # The store: every dataset object in its cache and its remotes.
        for root in _store_roots(platform):
            for md5, obj in _dir_objects(root):
                for _, files in _datasets_from_dir_object(root, obj, tmp / "store"):
                    where = f"store {root.name} dataset {md5}"
                    _scan_dataset(report, where, files, erased, ps, held=md5 in held_md5)
        # Models: only production, what a pending check needs and the newest reference on the
        # current dataset are kept; any other model still in the store is a finding.
        keep = {m.id for m in models if m.id in needed_models or (prod and m.id == prod.id)}
        refs = [m for m in models if m.kind == "reference"]
        if refs and current is not None and refs[-1].dataset_version_id == current.id:
            keep.add(refs[-1].id)
        for m in models:
            if m.id in keep or not m.dvc_md5:
                continue
            for root in _store_roots(platform):
                if _object(root, m.dvc_md5).exists():
                    report.findings.append(
                        Finding(
                            f"store {root.name} model version {m.id} ({m.kind})",
                            "superseded model still stored (derived from data later erased)",
                            hold,
                        )
                    )
        _check_pipeline(platform, report, erased, tmp / "pipeline")
        _check_processed(platform, report)
    return report


def _check_pipeline(platform: Platform, report: ErasureReport, erased: Erased, tmp: Path) -> None:
    home, data = platform.settings.home, platform.settings.data
    hold = not platform.policy.retention.purge_erased_versions
    ps = platform.pseudonymise
    user_ids = item_ids = None
    if (data / "train.txt").exists():
        from unlearnrec.data import read_lightgcn

        raw = read_lightgcn(data)
        user_ids, item_ids = raw.user_ids, raw.item_ids
        pairs = np.concatenate([raw.train, raw.test])
        report.scanned += 1
        n, ids = erased_pairs_in(user_ids, item_ids, pairs, erased, ps)
        if n or ids:
            report.findings.append(
                Finding(
                    f"pipeline input {_rel(data, home)}",
                    f"{n} erased pair(s), {ids} erased user id(s) in its id map",
                    hold,
                )
            )
    marker = _read_marker(platform)
    stale_outputs = set(marker.get("stale_outputs", []))
    for out in _pipeline_outs(home):
        path = home / out
        if not path.is_file() or path.is_symlink():
            continue
        if path.suffix == ".npz" and user_ids is not None:
            where = f"pipeline output {out}"
            _scan_splits(report, where, path, user_ids, item_ids, erased, ps, hold)
        if stale_outputs and _digests(path)[1] in stale_outputs:
            report.scanned += 1
            report.findings.append(
                Finding(
                    f"pipeline output {out}",
                    "computed from the data before an erasure, not recomputed since",
                    hold,
                )
            )
    purged = set(marker.get("purged_objects", []))
    roots = []
    if (home / ".dvc").is_dir():
        roots = dvc_roots(home / ".dvc")
    for root in roots:
        for md5, obj in _dir_objects(root):
            for sub, files in _datasets_from_dir_object(root, obj, tmp):
                where = f"project {root.name} object {md5}" + (f" ({sub})" if sub else "")
                _scan_dataset(report, where, files, erased, ps, hold)
        for md5 in sorted(purged):
            if _object(root, md5).exists():
                report.findings.append(
                    Finding(
                        f"project {root.name} object {md5}",
                        "computed from or holding erased data, purged earlier, present again",
                        hold,
                    )
                )
        if user_ids is not None and _dvc_objects(root).is_dir():
            for obj in sorted(_dvc_objects(root).glob("*/*")):
                if obj.suffix != ".dir" and _is_npz(obj):
                    where = f"project {root.name} object {obj.parent.name}{obj.name}"
                    _scan_splits(report, where, obj, user_ids, item_ids, erased, ps, hold)
        # A copy of a dataset folder dropped into a remote by hand is still a copy.
        if (root / "user_list.txt").is_file() and (root / "train.txt").is_file():
            try:
                files = Splits.read(root)
            except Exception:
                files = None
            if files is not None:
                _scan_dataset(report, f"dataset folder {root}", files, erased, ps, hold)


def _is_npz(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"PK"
    except OSError:
        return False


def _erased_in_splits(path: Path, user_ids, item_ids, erased: Erased, pseudonymise) -> int | None:
    """Erased pairs in a splits file (``fit``/``valid``/``test``, internal ids), None when
    ``path`` is not one (a model archive, any other file)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not {"fit", "valid", "test"} <= set(z.files):
                return None
            pairs = np.concatenate([z["fit"], z["valid"], z["test"]])
    except Exception:
        return None
    return erased_pairs_in(user_ids, item_ids, pairs, erased, pseudonymise)[0]


def _scan_splits(report, where, path, user_ids, item_ids, erased, pseudonymise, hold) -> None:
    n = _erased_in_splits(path, user_ids, item_ids, erased, pseudonymise)
    if n is None:
        return
    report.scanned += 1
    if n:
        report.findings.append(Finding(where, f"{n} erased pair(s) (internal ids)", hold))


def objects_holding_erased(
    roots: list[Path], erased: Erased, files: Splits, pseudonymise, tmp: Path
) -> set[str]:
    """The md5s of every DVC object in ``roots`` (a cache, remotes) that holds erased data: a
    dataset (its ``.dir`` object and every file it lists) with an erased pair or an erased
    user's raw id, and a splits file with an erased pair (read with ``files``' id maps: internal
    ids stay stable across versions). Any version counts, not only the one the project's
    ``.dvc`` file recorded last: an older one pushed earlier is as much a copy. A file another
    folder version also lists (one without erased data) is left: deleting it would break that
    version."""
    found: set[str] = set()
    shared: set[str] = set()  # the files of folder versions that hold no erased data
    for n, root in enumerate(roots):
        for md5, obj in _dir_objects(root):
            holds = False
            for _, dataset in _datasets_from_dir_object(root, obj, tmp / str(n)):
                pairs, raw = erased_pairs_in(
                    dataset.user_ids, dataset.item_ids, dataset.all_pairs(), erased, pseudonymise
                )
                holds = holds or bool(pairs or raw)
            if holds:
                found |= _dir_entries(root, md5)
            else:
                shared |= _dir_entries(root, md5) - {md5}
        if _dvc_objects(root).is_dir():
            for obj in sorted(_dvc_objects(root).glob("*/*")):
                if obj.suffix == ".dir" or not _is_npz(obj):
                    continue
                if _erased_in_splits(obj, files.user_ids, files.item_ids, erased, pseudonymise):
                    found.add(obj.parent.name + obj.name)
    return found - shared


def _check_processed(platform: Platform, report: ErasureReport) -> None:
    folder = platform.settings.inbox / "processed"
    if not folder.is_dir():
        return
    with session_scope(platform.engine) as session:
        open_labels = _open_labels(session)
    for path in sorted(folder.iterdir()):
        report.scanned += 1
        if _label_of_processed(path.name) not in open_labels:
            report.findings.append(
                Finding(
                    f"processed ticket file {path.name}",
                    "kept although none of its tickets is open (raw subject ids)",
                    not platform.policy.retention.purge_erased_versions,
                )
            )


def _rel(path: Path, home: Path) -> str:
    try:
        return str(path.relative_to(home))
    except ValueError:
        return str(path)


# -- processed ticket files ---------------------------------------------------------------------
def _label_of_processed(name: str) -> str:
    """``20261201T044534-dsar.json`` (or ``….json.2``) -> ``dsar.json``."""
    label = name.split("-", 1)[1] if "-" in name else name
    return re.sub(r"\.\d+$", "", label)


def _open_labels(session: Session) -> set[str]:
    labels = set()
    for t in session.exec(select(Ticket).where(col(Ticket.status).in_(TicketStatus.OPEN))):
        m = _LABEL.match(t.source or "")
        if m:
            labels.add(m.group(1))
    return labels


def purge_processed_files(platform: Platform) -> list[str]:
    """Delete the processed ticket files none of whose tickets is open: they hold raw subject
    ids, and the ledger keeps what the duty to prove the erasure needs (pseudonym, kind, counts,
    hashes, the file's label). Files of open tickets stay (a correction or a retry may need a
    person to read them). Records ``intake.file_deleted`` per file; returns the names."""
    folder = platform.settings.inbox / "processed"
    if not folder.is_dir() or not platform.policy.retention.purge_erased_versions:
        return []
    deleted = []
    with session_scope(platform.engine) as session:
        open_labels = _open_labels(session)
        for path in sorted(folder.iterdir()):
            if path.is_dir() and not path.is_symlink():
                continue
            label = _label_of_processed(path.name)
            if label in open_labels:
                continue
            digest = ""
            if path.is_file() and not path.is_symlink():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            path.unlink()
            deleted.append(path.name)
            append_event(
                session,
                actor=platform.actor,
                action="intake.file_deleted",
                entity="file",
                entity_id=label,
                data={"sha256": digest, "reason": "no open ticket needs it"},
            )
    return deleted


# -- purged model versions ----------------------------------------------------------------------
PURGE_RECORDED = "model.purged"


def record_purged_models(platform: Platform) -> list[int]:
    """Mark the model versions whose files the store no longer holds (unpinned, no object in its
    cache or local remotes) as purged, with a ``model.purged`` event each;
    returns their ids. The store is looked at, not the purge request: a row says purged only
    once its bytes are gone. (A remote with a scheme, s3:// or ssh://, is not looked into:
    ``dvc gc --cloud`` purged it with the cache.)"""
    pinned = set(platform.store.pinned())
    roots = _store_roots(platform)
    marked: list[int] = []
    with session_scope(platform.engine) as session:
        now = utcnow()
        rows = session.exec(select(ModelVersion).where(col(ModelVersion.purged).is_(False)))
        for m in rows:
            if not m.dvc_md5 or f"model-{m.dvc_md5.removesuffix('.dir')}" in pinned:
                continue
            if any(_object(root, m.dvc_md5).exists() for root in roots):
                continue
            m.purged, m.purged_at = True, now
            session.add(m)
            append_event(
                session,
                actor=platform.actor,
                action=PURGE_RECORDED,
                entity="model",
                entity_id=m.id,
                data={"kind": m.kind, "dvc_md5": m.dvc_md5},
            )
            marked.append(int(m.id))  # type: ignore[arg-type]
    return marked


# -- one data world: the pipeline's input is the platform's current dataset -------------------
def _read_marker(platform: Platform) -> dict:
    path = platform.settings.var / SYNC_MARKER
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _folder_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.txt")):
        h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _pipeline_outs(home: Path) -> list[str]:
    """The cached outputs of the pipeline's stages (dvc.yaml) and the default ones (what the
    platform bootstraps from)."""
    outs = []
    spec = home / "dvc.yaml"
    if spec.is_file():
        stages = (yaml.safe_load(spec.read_text()) or {}).get("stages", {})
        for stage in stages.values():
            for out in stage.get("outs", []) or []:
                outs.append(str(out if isinstance(out, str) else next(iter(out))))
    return list(dict.fromkeys([*outs, *DEFAULT_PIPELINE_OUTS]))


def _digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) of a file: DVC names its object by the md5."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            md5.update(block)
            sha.update(block)
    return md5.hexdigest(), sha.hexdigest()


def _locked_md5s(home: Path, outs: list[str]) -> list[str]:
    lock = home / "dvc.lock"
    if not lock.is_file():
        return []
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    found = []
    for stage in stages.values():
        for out in stage.get("outs", []) or []:
            if out.get("path") in outs and out.get("md5"):
                found.append(str(out["md5"]))
    return found


def _tracking_file(home: Path, data: Path) -> Path | None:
    """The ``*.dvc`` file of the project root whose output contains the pipeline input."""
    for dvc_file in sorted(home.glob("*.dvc")):
        try:
            outs = yaml.safe_load(dvc_file.read_text()).get("outs", [])
            target = (home / outs[0]["path"]).resolve()
        except Exception:
            continue
        if data.resolve() == target or target in data.resolve().parents:
            return dvc_file
    return None


def _dir_entries(root: Path, md5: str) -> set[str]:
    if not md5.endswith(".dir"):
        return {md5}
    try:
        entries = json.loads(_object(root, md5).read_text())
    except (OSError, ValueError):
        return {md5}
    return {md5} | {str(e["md5"]) for e in entries if isinstance(e, dict) and "md5" in e}


def _delete_objects(roots: list[Path], md5s: set[str]) -> list[str]:
    deleted = set()
    for root in roots:
        for md5 in md5s:
            obj = _object(root, md5)
            if obj.exists():
                os.chmod(obj, 0o600)
                obj.unlink()
                deleted.add(md5)
    return sorted(deleted)


@dataclass
class SyncResult:
    status: str  # "unchanged" | "synced" | "flagged" | "held"
    removed_outputs: list[str] = field(default_factory=list)
    purged_objects: list[str] = field(default_factory=list)
    reappeared: int = 0


def sync_pipeline(platform: Platform) -> SyncResult:
    """Make the DVC pipeline's input the platform's current dataset version once an erasure
    changed it; remove the pipeline outputs computed from the old input; delete the old input's
    and outputs' objects from the project's DVC cache and local remotes (``dvc add`` records the
    new input in its ``.dvc`` file). An input changed outside the platform since the last sync
    (a new import) is left as it is: erased users found in it are flagged, not re-added."""
    if not platform.policy.retention.purge_erased_versions:
        return SyncResult("held")
    home, data = platform.settings.home, platform.settings.data
    marker = _read_marker(platform)
    with session_scope(platform.engine) as session:
        current = current_dataset(session)
        erased = erased_by_certified(session)
    if current is None or current.parent_id is None or not erased:
        return SyncResult("unchanged")
    if marker and (data / "train.txt").exists() and _folder_hash(data) != marker.get("content"):
        return _flag_import(platform, data, erased, marker)
    if marker.get("dataset_md5") == current.dvc_md5:
        return SyncResult("unchanged")
    from unlearnrec.compliance.versions import read_dataset_version
    from unlearnrec.data import InteractionData, write_lightgcn

    files = read_dataset_version(platform, current)
    with scratch_dir(platform.settings.var, "pipeline") as tmp:
        staged = Path(tmp) / "data"
        train = np.concatenate([files.fit, files.valid])
        train = train[np.lexsort((train[:, 1], train[:, 0]))]
        write_lightgcn(
            InteractionData(
                files.num_users,
                files.num_items,
                train,
                files.test,
                files.user_ids,
                files.item_ids,
                data.name,
            ),
            staged,
        )
        data.mkdir(parents=True, exist_ok=True)
        for path in sorted(data.glob("*.txt")):
            if not (staged / path.name).exists():
                path.unlink()
        for path in sorted(staged.iterdir()):
            os.replace(path, data / path.name)
    result = SyncResult("synced")
    outs = _pipeline_outs(home)
    stale: set[str] = set()
    # The outputs computed from the old input: their bytes are remembered (sha256) so a copy
    # put back is found, and their DVC objects (md5) deleted wherever they are.
    stale_files = set(marker.get("stale_outputs", []))
    for out in outs:
        if (home / out).is_file() and not (home / out).is_symlink():
            md5, sha = _digests(home / out)
            stale.add(md5)
            stale_files.add(sha)
    dvc_dir = home / ".dvc"
    if dvc_dir.is_dir():
        roots = dvc_roots(dvc_dir)
        keep: set[str] = set()
        tracking = _tracking_file(home, data)
        if tracking is not None:
            old = str(yaml.safe_load(tracking.read_text())["outs"][0]["md5"])
            target = str(yaml.safe_load(tracking.read_text())["outs"][0]["path"])
            run_dvc(home, "add", "-q", target, where="in the project")
            new = str(yaml.safe_load(tracking.read_text())["outs"][0]["md5"])
            keep = _dir_entries(roots[0], new)
            if old != new:
                for root in roots:
                    stale |= _dir_entries(root, old) - keep
        for md5 in _locked_md5s(home, outs):
            for root in roots:
                stale |= _dir_entries(root, md5)
        # Older versions of the input (pushed before the one the .dvc file recorded last) and
        # splits computed from them: found by their content, in the cache and every local
        # remote (the project's ~/.cache/unlearnrec/dvc-remote included).
        with scratch_dir(platform.settings.var, "pipeline-objects") as tmp:
            stale |= objects_holding_erased(roots, erased, files, platform.pseudonymise, tmp) - keep
        result.purged_objects = _delete_objects(roots, stale)
    for out in outs:
        path = home / out
        if path.is_file() or path.is_symlink():
            path.unlink()
            result.removed_outputs.append(out)
        elif path.is_dir():
            shutil.rmtree(path)
            result.removed_outputs.append(out)
    content = _folder_hash(data)
    purged = sorted(set(marker.get("purged_objects", [])) | set(result.purged_objects))
    from unlearnrec.files import atomic_write_text

    with session_scope(platform.engine) as session:
        append_event(
            session,
            actor=platform.actor,
            action="pipeline.synced",
            entity="dataset",
            entity_id=current.id,
            data={
                "dvc_md5": current.dvc_md5,
                "input_sha256": content,
                "removed_outputs": result.removed_outputs,
                "purged_objects": len(result.purged_objects),
            },
        )
    atomic_write_text(
        platform.settings.var / SYNC_MARKER,
        json.dumps(
            {
                "dataset_md5": current.dvc_md5,
                "content": content,
                "purged_objects": purged,
                "stale_outputs": sorted(stale_files),
            },
            indent=1,
        ),
    )
    log.info(
        "pipeline input is dataset version %s; %d output(s) removed, %d object(s) purged",
        current.id,
        len(result.removed_outputs),
        len(result.purged_objects),
    )
    return result


def _flag_import(platform: Platform, data: Path, erased: Erased, marker: dict) -> SyncResult:
    """The pipeline input changed outside the platform: not overwritten; erased data in it is
    recorded once per input (``erasure.reappeared``) and logged on every pass."""
    from unlearnrec.data import read_lightgcn
    from unlearnrec.files import atomic_write_text

    raw = read_lightgcn(data)
    pairs = np.concatenate([raw.train, raw.test])
    n, ids = erased_pairs_in(raw.user_ids, raw.item_ids, pairs, erased, platform.pseudonymise)
    digest = _folder_hash(data)
    if (n or ids) and marker.get("flagged") != digest:
        atomic_write_text(
            platform.settings.var / SYNC_MARKER, json.dumps({**marker, "flagged": digest}, indent=1)
        )
        with session_scope(platform.engine) as session:
            append_event(
                session,
                actor=platform.actor,
                action="erasure.reappeared",
                entity="dataset",
                entity_id="pipeline-input",
                data={"pairs": n, "user_ids": ids, "input_sha256": digest},
            )
    log.warning(
        "the pipeline input changed outside the platform (%d erased pair(s), %d erased user "
        "id(s) in it): not overwritten, not synced until a person replaces it",
        n,
        ids,
    )
    return SyncResult("flagged", reappeared=n + ids)

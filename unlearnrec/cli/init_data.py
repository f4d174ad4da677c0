"""``unlearnrec init --data FILE``: make a team's own interaction export the platform's dataset.

Accepted inputs (``unlearnrec.data.readers``): a LightGCN folder (``train.txt``, optional
``test.txt`` and id lists), a MovieLens ratings file (ml-100k ``u.data``, ml-1m
``ratings.dat``), or a CSV/TSV of ``user,item[,rating,timestamp]`` with or without a header.

The order is: check the arguments and the platform (``check``: nothing written), read and
validate the whole file (a malformed line names its file and line), then write the dataset as
the platform's LightGCN folder with id maps (``data/<name>``, or ``UNLEARNREC_DATA_DIR``),
point ``params.yaml``'s ``data.path`` at it, track ``data/`` with DVC (in a DVC project), run
the pipeline's ``prepare``, ``train``, ``pretrain`` and ``ladder`` stages (the same outputs
under ``artifacts/`` as ``dvc repro``), and import the split and the base model (with its
encoder and its retrain ladder's record) as the platform's version 0. Tickets then name the
file's own user and item ids.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unlearnrec.records.settings import Settings, pipeline_data_path

if TYPE_CHECKING:
    from unlearnrec.data import InteractionData

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_USERS, MIN_ITEMS = 2, 2
DVC_TIMEOUT_S = 600


class InitUsageError(ValueError):
    """A bad argument or a platform that cannot take a dataset; said before any work."""


@dataclass(frozen=True)
class InitPlan:
    source: Path
    folder: Path  # the platform's dataset folder to write
    relative: str  # as params.yaml names it (relative to home when inside it)
    params_file: Path


def dataset_name(source: Path) -> str:
    """A folder name from the input's: ``ml-100k/u.data`` -> ``ml-100k``, ``x.csv`` -> ``x``."""
    stem = source.name if source.is_dir() else source.stem
    if stem.lower() in ("u", "ratings", "data", "train", "interactions", "inter"):
        stem = source.resolve().parent.name or stem
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "dataset"
    return cleaned[:64]


def _ledger_has_dataset(settings: Settings) -> str | None:
    """A description of the dataset the platform holds already, None when it holds none (or
    there is no ledger yet)."""
    from sqlalchemy.engine import make_url

    from unlearnrec.ledger.db import LedgerUnavailable, make_engine

    url = settings.database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").exists():
        return None
    try:
        engine = make_engine(url, read_only=True)
    except LedgerUnavailable:
        return None
    try:
        from sqlalchemy import inspect, text

        from unlearnrec.ledger.db import LedgerOutOfDate, check_db, schema_status

        if schema_status(engine)["current"] is not None:
            try:
                check_db(engine)  # behind: say so now, not after training
            except LedgerOutOfDate as exc:
                raise InitUsageError(str(exc)) from None
        if not inspect(engine).has_table("datasetversion"):
            return None
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT id, path, num_users, num_items FROM datasetversion ORDER BY id LIMIT 1"
                )
            ).first()
    finally:
        engine.dispose()
    if row is None:
        return None
    return f"dataset version {row[0]} ({row[2]} users, {row[3]} items)"


def check(settings: Settings, source: Path, *, name: str | None, force: bool) -> InitPlan:
    """Everything ``init`` can know without reading the data: raises ``InitUsageError``."""
    if not source.exists():
        raise InitUsageError(f"--data {source} does not exist")
    if source.is_dir() and not (source / "train.txt").is_file():
        raise InitUsageError(f"--data {source} is a folder without train.txt (not LightGCN)")
    if name is not None and not NAME_RE.match(name):
        raise InitUsageError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (64 at most)")
    held = _ledger_has_dataset(settings)
    if held is not None:
        raise InitUsageError(
            f"the platform at {settings.var} already holds {held}: init sets up a new platform "
            "(give another --home or UNLEARNREC_VAR_DIR; a ledger is never reset)"
        )
    home = settings.home.resolve()
    if settings.data_dir is not None:
        folder = Path(settings.data_dir).resolve()
    else:
        folder = home / "data" / (name or dataset_name(source))
    if folder.exists() and any(folder.iterdir()) and not force:
        raise InitUsageError(
            f"{folder} exists and is not empty: give --force to replace it, or --name"
        )
    if source.resolve() == folder or folder in source.resolve().parents:
        raise InitUsageError(f"--data {source} is inside the dataset folder {folder}")
    try:
        relative = str(folder.relative_to(home))
    except ValueError:
        relative = str(folder)
    return InitPlan(source, folder, relative, home / "params.yaml")


def set_params_data_path(params_file: Path, relative: str) -> None:
    """Point ``data.path`` in ``params.yaml`` at the dataset folder, keeping every other line
    (comments included); a missing file gets a ``data`` section only."""
    from unlearnrec.files import atomic_write_text

    if not params_file.exists():
        atomic_write_text(params_file, f"data:\n  path: {relative}\n")
        return
    lines = params_file.read_text(encoding="utf-8").split("\n")
    out: list[str] = []
    in_data = done = False
    for line in lines:
        if re.match(r"^\S", line):  # a top-level key
            if in_data and not done:
                out.append(f"  path: {relative}")
                done = True
            in_data = line.split("#", 1)[0].strip() == "data:"
        elif in_data and not done and re.match(r"^\s+path\s*:", line):
            indent = line[: len(line) - len(line.lstrip())]
            comment = line.split("#", 1)[1] if "#" in line else ""
            line = f"{indent}path: {relative}" + (f"  #{comment}" if comment else "")
            done = True
        out.append(line)
    if not done:
        if in_data:
            out.insert(len(out) - (1 if out and out[-1] == "" else 0), f"  path: {relative}")
        else:
            out[-1:] = (
                [out[-1], "data:", f"  path: {relative}", ""]
                if out[-1]
                else [
                    "data:",
                    f"  path: {relative}",
                    "",
                ]
            )
    atomic_write_text(params_file, "\n".join(out))
    if pipeline_data_path(params_file.parent) != relative:  # never leave it half-edited
        raise RuntimeError(f"could not set data.path in {params_file}; set it to {relative}")


def _dvc_track(home: Path, log: Callable[[str], None]) -> bool:
    """``dvc add data`` where ``home`` is a DVC project (``data.dvc`` then records the new
    folder); False where it is not."""
    if not (home / ".dvc").is_dir():
        return False
    import sys

    # the dvc installed beside this interpreter (the project's), as the compliance store runs it
    cmd = [sys.executable, "-m", "dvc", "add", "--quiet", "data"]
    log("$ dvc add data")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(cmd, cwd=home, env=env, check=True, timeout=DVC_TIMEOUT_S)
    return True


def lay_out(
    plan: InitPlan,
    raw: dict[str, Any],
    *,
    min_rating: float | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> InteractionData:
    """Read and validate the whole input, then write it as the platform's dataset folder (its
    train/test split and the user/item id maps) and point ``params.yaml`` at it. Nothing is
    written when the input is malformed (``DataFormatError`` names the file and the line)."""
    from unlearnrec.config import params_from_dict
    from unlearnrec.data import read_dataset, write_lightgcn

    data_section = dict(raw.get("data") or {})
    if min_rating is not None:
        data_section["min_rating"] = min_rating
    params = params_from_dict({**raw, "data": data_section})
    log(f"reading {plan.source}")
    data = read_dataset(
        plan.source,
        min_rating=params.data.min_rating,
        test_fraction=params.data.test_fraction,
        seed=params.data.seed,
    )
    if data.num_users < MIN_USERS or data.num_items < MIN_ITEMS or len(data.train) == 0:
        raise ValueError(
            f"{plan.source}: {data.num_users} users, {data.num_items} items and "
            f"{len(data.train)} training pairs: too few to train a recommender"
        )
    log(
        f"{data.num_users} users, {data.num_items} items, {len(data.train) + len(data.test)} "
        f"interactions; writing {plan.folder}"
    )
    write_lightgcn(data, plan.folder)
    set_params_data_path(plan.params_file, plan.relative)
    return data


def run_init(
    settings: Settings,
    plan: InitPlan,
    *,
    params_raw: dict[str, Any],
    min_rating: float | None,
    device: str,
    log: Callable[[str], None],
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Validate, lay out, train, pre-train and bootstrap (see the module docstring)."""
    from unlearnrec.config import params_from_dict
    from unlearnrec.experiments import pipeline
    from unlearnrec.training.loop import resolve_device

    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in params_raw.items()}
    data = lay_out(plan, raw, min_rating=min_rating, log=log)
    tracked = _dvc_track(settings.home.resolve(), log)

    data_section = raw.setdefault("data", {})
    data_section.pop("min_rating", None)  # the folder holds the kept positives already
    data_section["path"] = str(plan.folder)
    params = params_from_dict(raw)
    art = settings.home.resolve() / "artifacts"
    dev = resolve_device(device)
    log("prepare: validation split")
    splits = pipeline.prepare(params, art / "prepared")
    log(f"train: {params.model.name} on {dev}")
    base = pipeline.train(params, art / "prepared/splits.npz", art / "base", dev, on_epoch)
    log("pretrain: the Influence Encoder")
    encoder = pipeline.pretrain(
        params, art / "prepared/splits.npz", art / "base/model.pt", art / "encoder", dev
    )
    log("ladder: the fastest retrain configuration reaching the base model's utility")
    from unlearnrec.experiments.bench import ladder_for_base

    ladder = ladder_for_base(splits, art / "base/model.pt", dev, train=params.train, log=log)
    pipeline.write_ladder(art / "ladder/ladder.json", ladder)

    from unlearnrec.compliance.lifecycle import bootstrap
    from unlearnrec.compliance.platform import Platform

    platform = Platform.open(settings, actor="init")
    try:
        dataset_id, model_id = bootstrap(
            platform,
            data_dir=plan.folder,
            splits_path=art / "prepared/splits.npz",
            model_path=art / "base/model.pt",
            encoder_path=art / "encoder/encoder.pt",
            ladder_path=art / "ladder/ladder.json",
        )
    finally:
        platform.engine.dispose()
    return {
        "source": str(plan.source),
        "dataset": str(plan.folder),
        "params_data_path": plan.relative,
        "dvc_tracked": tracked,
        "users": data.num_users,
        "items": data.num_items,
        "interactions": len(data.train) + len(data.test),
        "splits": splits.stats(),
        "base_model": {k: base[k] for k in ("test", "best_epoch", "epochs_run", "seconds")},
        "encoder": {k: encoder[k] for k in ("seconds", "requests", "final_loss")},
        "retrain": ladder["retrain"],  # what the platform's retrains override (the ladder's pick)
        "dataset_version": dataset_id,
        "model_version": model_id,
        "example_user": str(data.user_ids[0]),
        "example_item": str(data.item_ids[0]),
    }


def summary_text(result: dict[str, Any]) -> str:
    user, item = result["example_user"], result["example_item"]
    recall = next(iter(result["base_model"]["test"].items()), ("", float("nan")))
    return "\n".join(
        [
            f"dataset:   {result['dataset']} ({result['users']} users, {result['items']} items, "
            f"{result['interactions']} interactions; id maps user_list.txt / item_list.txt)",
            f"params:    data.path = {result['params_data_path']}"
            + ("; data/ tracked by DVC (data.dvc)" if result["dvc_tracked"] else ""),
            f"model:     base model trained ({result['base_model']['epochs_run']} epochs, "
            f"test {recall[0]} {recall[1]:.4f}), encoder pre-trained",
            f"platform:  dataset version {result['dataset_version']}, model version "
            f"{result['model_version']} in the ledger",
            "",
            "next: tickets name your own ids, e.g. a tickets.json of",
            f'  [{{"external_id": "DSAR-1", "kind": "erase_user", "subject": "{user}", '
            '"legal_basis": "GDPR-17(1)(a)"},',
            f'   {{"external_id": "DSAR-2", "kind": "take_down_item", "items": ["{item}"], '
            '"legal_basis": "GDPR-17(1)(d)"}]',
            "then: unlearnrec tickets submit tickets.json && unlearnrec flows run process --force",
        ]
    )

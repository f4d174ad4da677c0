"""Dataset and model versions: the ledger rows and the DVC store folders behind them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlmodel import Session, col, select

from unlearnrec.compliance.platform import Platform
from unlearnrec.compliance.scratch import scratch_dir
from unlearnrec.data.splits import Splits
from unlearnrec.files import sha256_file
from unlearnrec.ledger import DatasetVersion, ModelVersion, add_with_event

PRODUCTION_KINDS = ("base", "unlearned", "retrain")


def production_model(session: Session) -> ModelVersion | None:
    """The model in production: the newest base, unlearned or retrained (promoted) version."""
    return session.exec(
        select(ModelVersion)
        .where(col(ModelVersion.kind).in_(PRODUCTION_KINDS))
        .order_by(col(ModelVersion.id).desc())
    ).first()


def current_dataset(session: Session) -> DatasetVersion | None:
    return session.exec(select(DatasetVersion).order_by(col(DatasetVersion.id).desc())).first()


@contextmanager
def checkout(platform: Platform, kind: str, md5: str) -> Iterator[Path]:
    """A folder holding version ``md5`` of ``kind``: the store's current folder when it is that
    version, else a temporary copy fetched from the cache or the remote."""
    current = platform.store.current(kind)
    dvc_file = current.parent / "current.dvc"
    if current.is_dir() and dvc_file.exists() and platform.store.read_md5(dvc_file) == md5:
        yield current
        return
    with scratch_dir(platform.settings.var, kind) as tmp:
        yield platform.store.fetch(kind, md5, tmp / "v")


def read_dataset_version(platform: Platform, version: DatasetVersion) -> Splits:
    with checkout(platform, "dataset", version.dvc_md5) as folder:
        return Splits.read(folder)


def add_dataset_version(
    platform: Platform,
    session: Session,
    files: Splits,
    *,
    parent_id: int | None,
    run_id: int | None,
) -> DatasetVersion:
    """Write ``files`` as the store's current dataset (DVC add + push) and record it."""
    with scratch_dir(platform.settings.var, "dataset") as tmp:
        folder = files.write(Path(tmp) / "dataset")
        stored = platform.store.add("dataset", folder)
    existing = session.exec(
        select(DatasetVersion).where(DatasetVersion.dvc_md5 == stored.md5)
    ).first()
    if existing is not None and existing.run_id == run_id:
        return existing  # a re-run after a crash produced the same bytes: one version
    version = DatasetVersion(
        dvc_md5=stored.md5,
        content_hash=files.content_hash(),
        path=str(platform.store.current("dataset")),
        parent_id=parent_id,
        run_id=run_id,
        num_users=files.num_users,
        num_items=files.num_items,
        num_interactions=files.num_interactions,
    )
    return record_dataset_version(session, platform.actor, version)


def record_dataset_version(session: Session, actor: str, version: DatasetVersion) -> DatasetVersion:
    """Add ``version`` to the ledger with its ``dataset.version`` audit event."""
    return add_with_event(
        session,
        version,
        actor=actor,
        action="dataset.version",
        entity="dataset",
        data={
            "dvc_md5": version.dvc_md5,
            "parent_id": version.parent_id,
            "interactions": version.num_interactions,
            "content_hash": version.content_hash,
            "run_id": version.run_id,
        },
    )


def record_model_version(session: Session, actor: str, version: ModelVersion) -> ModelVersion:
    """Add ``version`` to the ledger with its ``model.version`` audit event."""
    return add_with_event(
        session,
        version,
        actor=actor,
        action="model.version",
        entity="model",
        data={
            "kind": version.kind,
            "sha256": version.sha256,
            "dvc_md5": version.dvc_md5,
            "dataset_version_id": version.dataset_version_id,
            "parent_id": version.parent_id,
            "run_id": version.run_id,
        },
    )


def add_model_version(
    platform: Platform,
    session: Session,
    folder: Path,
    *,
    kind: str,
    dataset_version_id: int,
    parent_id: int | None,
    run_id: int | None,
    metrics: dict | None = None,
) -> ModelVersion:
    """Track a model folder (``model.pt`` and, for production models, ``encoder.pt``)."""
    sha = sha256_file(folder / "model.pt")
    # Production models become the store's current model; references live beside it.
    name = "current" if kind in PRODUCTION_KINDS else "reference"
    stored = platform.store.add("model", folder, name=name)
    md5, path = stored.md5, str(platform.store.root / "models" / name)
    version = ModelVersion(
        kind=kind,
        sha256=sha,
        dvc_md5=md5,
        path=path,
        dataset_version_id=dataset_version_id,
        parent_id=parent_id,
        run_id=run_id,
        metrics=metrics or {},
    )
    return record_model_version(session, platform.actor, version)

"""Self-describing checkpoints: weights, configs, data hash, code version and metrics together.

A checkpoint is written atomically (temp file + rename), so a crash never leaves half a model.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unlearnrec import __version__
from unlearnrec.config import ModelConfig, from_dict
from unlearnrec.files import atomic_write_bytes
from unlearnrec.models import GraphRecommender, build_model

FORMAT = "unlearnrec.checkpoint/1"


def code_version() -> str:
    """Package version plus the git commit of the source tree when there is one."""
    root = Path(__file__).resolve().parents[2]  # the source tree (unlearnrec/training/..)
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "unlearnrec",
            ],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{__version__}+g{commit}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def save_torch(path: str | Path, payload: dict[str, Any]) -> str:
    """``torch.save`` atomically; returns the sha256 of the bytes written."""
    import io

    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


@dataclass
class Checkpoint:
    model: GraphRecommender
    meta: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    model: GraphRecommender,
    *,
    train_config: dict[str, Any] | None = None,
    data_hash: str = "",
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    weights: bool = True,
    code: str | None = None,
) -> str:
    """Save a model with everything needed to rebuild and audit it; returns the file's sha256.

    ``weights=False`` keeps the record only (configs, data hash, lineage, metrics): for a model
    whose weights live in files of their own (a sharded model's sub-models, named with their
    sha256 in ``extra``), read back with :func:`read_checkpoint_meta`. ``code``: the code version
    to record (default :func:`code_version`, which names the commit)."""
    state = model.state_dict() if weights else {}
    payload = {
        "format": FORMAT,
        "model": model.describe(),
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
        "train_config": train_config or {},
        "data_hash": data_hash,
        "code_version": code_version() if code is None else code,
        "metrics": metrics or {},
        "extra": extra or {},
    }
    return save_torch(path, payload)


def fit_epochs_of(meta: dict[str, Any]) -> int | None:
    """Epochs the model's lineage was trained for (its training's best epoch), from a
    checkpoint's meta: a trained model records ``metrics.best_epoch``, an unlearned one carries
    ``extra.fit_epochs`` forward from the model it came from. None when neither is there."""
    value = (meta.get("metrics") or {}).get("best_epoch") or (meta.get("extra") or {}).get(
        "fit_epochs"
    )
    return int(value) if value else None


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """A checkpoint's record without its weights (and without rebuilding the model)."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an unlearnrec checkpoint (format {payload.get('format')!r})")
    return {k: v for k, v in payload.items() if k != "state_dict"}


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild the model of a checkpoint on ``device``; the rest is returned as ``meta``."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an unlearnrec checkpoint (format {payload.get('format')!r})")
    desc = payload["model"]
    config = from_dict(ModelConfig, desc["config"])
    model = build_model(desc["num_users"], desc["num_items"], config)
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return Checkpoint(model=model, meta=meta)

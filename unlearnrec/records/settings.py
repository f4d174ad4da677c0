"""Environment settings in one place: paths, the database URL, the device.

Read from ``UNLEARNREC_*`` environment variables; every default is relative to ``home`` (the
project root by default), so the main job runs with no configuration at all. Importing this module
is cheap (no torch): the dashboard and the ledger use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DataPathError(ValueError):
    """The dataset settings contradict each other or name something that is not a dataset."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNLEARNREC_", extra="ignore")

    home: Path = Field(default_factory=Path.cwd, description="project root")
    db_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite under var/")
    var_dir: Path | None = Field(None, description="runtime state: ledger, versions, certificates")
    inbox_dir: Path | None = Field(None, description="ticket files dropped here are ingested")
    secrets_dir: Path | None = Field(None, description="signing key and pseudonym secret (0600)")
    policy_path: Path | None = Field(None, description="the compliance policy in force")
    data_dir: Path | None = Field(None, description="the DVC-tracked dataset folder")
    device: str = "auto"
    max_ticket_file_bytes: int = 5_000_000  # larger files are refused, not parsed

    def _under(self, value: Path | None, default: str) -> Path:
        return Path(value) if value is not None else self.home / default

    @property
    def var(self) -> Path:
        return self._under(self.var_dir, "var")

    @property
    def inbox(self) -> Path:
        return self._under(self.inbox_dir, "inbox")

    @property
    def secrets(self) -> Path:
        return self._under(self.secrets_dir, "secrets")

    @property
    def policy(self) -> Path:
        return self._under(self.policy_path, "policies/gdpr-default.yaml")

    @property
    def data(self) -> Path:
        """The platform's dataset folder (LightGCN layout with id maps): ``UNLEARNREC_DATA_DIR``,
        else the folder ``params.yaml``'s ``data.path`` names (``unlearnrec init --data`` sets
        it), else the bundled ``data/synthetic``. A ``DataPathError`` when the two name
        different folders (the platform and ``dvc repro`` would read different data) or when
        ``data.path`` names a file (a ratings export not yet laid out as a dataset)."""
        configured = pipeline_data_path(self.home)
        target = self.home / configured if configured is not None else None
        if target is not None and target.is_file():
            raise DataPathError(
                f"{self.home / 'params.yaml'}: data.path {configured} is a file, not a dataset "
                f"folder; lay it out with `unlearnrec init --data {configured}` (which points "
                "data.path at the folder it writes)"
            )
        if self.data_dir is not None:
            if target is not None and Path(self.data_dir).resolve() != target.resolve():
                raise DataPathError(
                    f"UNLEARNREC_DATA_DIR={self.data_dir} but {self.home / 'params.yaml'} has "
                    f"data.path {configured}: the platform and `dvc repro` would read different "
                    "data; set data.path to the same folder or unset UNLEARNREC_DATA_DIR"
                )
            return Path(self.data_dir)
        if target is not None and target.is_dir():
            return target
        return self.home / "data/synthetic"

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.var / 'ledger.sqlite'}"

    @property
    def certificates(self) -> Path:
        return self.var / "certificates"

    @property
    def signing_key(self) -> Path:
        return self.secrets / "signing_key.pem"

    @property
    def public_key(self) -> Path:
        return self.var / "certificates" / "public_key.pem"

    @property
    def pseudonym_secret(self) -> Path:
        return self.secrets / "pseudonym.secret"


def pipeline_data_path(home: Path) -> str | None:
    """``data.path`` of ``home/params.yaml`` (the DVC pipeline's input), None without one."""
    params = Path(home) / "params.yaml"
    if not params.is_file():
        return None
    import yaml

    try:
        raw = yaml.safe_load(params.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    path = (raw.get("data") or {}).get("path") if isinstance(raw, dict) else None
    return str(path) if path else None


def pipeline_retrain_overrides(home: Path) -> dict[str, Any]:
    """``retrain:`` of ``home/params.yaml``: the training fields the reference retrain overrides
    (``unlearnrec ladder --write-params`` writes the fastest equal-utility configuration there);
    empty without a params file or section. A section that is not a mapping, or a params file
    that is not YAML, is a ``ValueError``: a reference silently trained with another
    configuration would misstate the speed-up."""
    params = Path(home) / "params.yaml"
    if not params.is_file():
        return {}
    import yaml

    try:
        raw = yaml.safe_load(params.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{params}: not YAML ({exc})") from exc
    section = raw.get("retrain") if isinstance(raw, dict) else None
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ValueError(f"{params}: retrain must be a mapping of training fields")
    return dict(section)


def get_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]

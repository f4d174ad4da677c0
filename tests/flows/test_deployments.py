"""The deployments that write models and certificates run one flow run at a time, both as
served (``flows/deployments.py``) and as deployed to a work pool (``prefect.yaml``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from flows.deployments import deployments

ROOT = Path(__file__).resolve().parents[2]
SINGLE = {"process-deletions-hourly", "retrain-reference-nightly"}


def test_served_deployments_limit_processing_to_one_run():
    by_name = {d.name: d for d in deployments()}
    for name in SINGLE:
        assert by_name[name].concurrency_limit == 1
        assert by_name[name].concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert by_name["ingest-every-5-min"].concurrency_limit is None


def test_work_pool_deployments_limit_processing_to_one_run():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    limits = {d["name"]: d.get("concurrency_limit") for d in spec["deployments"]}
    for name in SINGLE:
        assert limits[name] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}

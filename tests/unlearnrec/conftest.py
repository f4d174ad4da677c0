"""Fixtures of the command-line tests: a small synthetic LightGCN folder to run `bench` on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from unlearnrec.data import generate_synthetic, write_lightgcn


@pytest.fixture
def bench_on_tiny(tmp_path) -> Callable[..., list[str]]:
    """``make(params, **synthetic)`` writes ``generate_synthetic(**synthetic)`` as the LightGCN
    folder ``tmp_path/tiny`` and ``params`` as ``tmp_path/params.yaml``; returns the `bench`
    arguments that run on them on the CPU (the caller adds requests, methods, outputs)."""

    def make(params: str, **synthetic: Any) -> list[str]:
        write_lightgcn(generate_synthetic(**synthetic), tmp_path / "tiny")
        (tmp_path / "params.yaml").write_text(params)
        return [
            "bench",
            "--data",
            str(tmp_path / "tiny"),
            "--device",
            "cpu",
            "--params",
            str(tmp_path / "params.yaml"),
        ]

    return make

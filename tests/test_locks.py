"""The hashed locks that `python3 dev.py setup` installs with --require-hashes: every requirement
pinned exactly and hashed, no package in both, and every dependency pyproject.toml names pinned
at a version its range admits (a dependency added without relocking fails here, not in CI's
install)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ("requirements.lock", "requirements-dev.lock")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def requirements(text: str) -> list[str]:
    """Each requirement with its continuation lines joined (comments dropped)."""
    joined = re.sub(r"\\\n", " ", text)
    lines = (line.split(" #")[0].strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def pins(name: str) -> dict[str, str]:
    """canonical name -> pinned version, for one lock."""
    out = {}
    for line in requirements((ROOT / name).read_text()):
        req = Requirement(line.split(" --hash")[0].strip())
        (spec,) = req.specifier
        out[canonicalize_name(req.name)] = spec.version
    return out


def test_requirements_are_split_like_pip_reads_them():
    text = "# header\na==1 \\\n    --hash=sha256:" + "0" * 64 + "\nb==2  # why\n"
    assert requirements(text) == ["a==1      --hash=sha256:" + "0" * 64, "b==2"]


@pytest.mark.parametrize("name", LOCKS)
def test_every_requirement_is_pinned_exactly_and_hashed(name):
    lines = requirements((ROOT / name).read_text())
    assert lines, f"{name} pins nothing"
    for line in lines:
        assert not line.startswith("-"), f"{name}: an option, not a pin: {line[:60]}"
        req = Requirement(line.split(" --hash")[0].strip())
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{name}: not pinned: {req}"
        assert "*" not in specs[0].version, f"{name}: wildcard pin: {req}"
        assert HASH.search(line), f"{name}: {req} has no sha256 hash"


def test_no_package_is_pinned_in_both_locks():
    runtime, dev = (pins(name) for name in LOCKS)
    assert not set(runtime) & set(dev)


def test_pyproject_dependencies_are_pinned_within_their_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, dev = (pins(name) for name in LOCKS)
    wanted = [(d, runtime) for d in project["dependencies"]]
    wanted += [(d, runtime | dev) for d in project["optional-dependencies"]["dev"]]
    for dependency, lock in wanted:
        req = Requirement(dependency)
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} is in pyproject.toml but not locked"
        assert req.specifier.contains(lock[name], prereleases=True), (
            f"{req.name}=={lock[name]} is outside pyproject's {req.specifier}"
        )

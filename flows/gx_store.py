"""The platform's Great Expectations project: suites, validation definitions and checkpoints kept
under the state folder, every run's validation result kept, data docs built locally.

``open_store(var)`` opens (creating on first use) a file-backed GX project in ``var/gx/``:

* ``expectations/<suite>.json``: the suites, written from the code's definitions at each process
  start (the code is the source of truth; the files are what GX and its data docs read);
* ``validation_definitions/`` and ``checkpoints/``: one ValidationDefinition and one Checkpoint
  per suite, on one pandas dataframe asset (the frame is given per run);
* ``uncommitted/validations/<suite>/<run name>/<run time>/<batch>.json``: each run's result;
* ``uncommitted/data_docs/local_site/``: the static HTML site, ``index.html`` plus one page per
  result, updated by the checkpoint's ``UpdateDataDocsAction`` after each run.

Without a state folder (``open_store(None)``) the same checkpoints run in an ephemeral context:
results live in memory and no data docs are built.

A store is built once per process and folder (0.7 to 0.8 s after GX's import, measured on a
shared 2-core machine); creating the project is serialised across processes with a file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

GX_FOLDER = "gx"  # under the state folder (GX's project_root_dir is the state folder)
SITE = "local_site"
# The index page lists this many most recent results, reading each one per build (a few ms
# apiece), so it is bounded; every result keeps its own page, which the ledger names.
RESULTS_IN_INDEX = 20

_VIEWS = "flows.gx_docs"


def site_config() -> dict[str, Any]:
    """GX's default local site with our cached-template views, no how-to buttons, no profiling
    section, and an index bounded to the latest :data:`RESULTS_IN_INDEX` results."""

    def page() -> dict[str, str]:
        return {"module_name": _VIEWS, "class_name": "CachedPageView"}

    return {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": f"uncommitted/data_docs/{SITE}/",
        },
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "validation_results_limit": RESULTS_IN_INDEX,
            "view": {"module_name": _VIEWS, "class_name": "CachedIndexPageView"},
        },
        "site_section_builders": {
            "expectations": {"view": page()},
            "validations": {"view": page()},
            "profiling": "None",
        },
    }


@dataclass(frozen=True)
class SuiteSpec:
    """One suite: its checks as (check name, GX expectation) in order, and the result format
    its checkpoint asks for."""

    name: str
    checks: Sequence[tuple[str, Any]]
    result_format: Mapping[str, Any]


@dataclass(frozen=True)
class CheckpointRun:
    """One checkpoint run: GX's suite validation result, the stored result's id (its path under
    ``uncommitted/validations/`` without ``.json``), and its data-docs page relative to the
    state folder (None without one)."""

    result: Any  # great_expectations ExpectationSuiteValidationResult
    result_id: str
    data_docs: str | None


class GxStore:
    """A GX context holding the given suites, each behind a ValidationDefinition and a
    Checkpoint; :meth:`run` validates a dataframe through a suite's checkpoint. Not thread-safe:
    callers serialise runs (``flows.validation`` holds its lock)."""

    def __init__(self, gx: Any, root: Path | None, suites: Sequence[SuiteSpec]) -> None:
        self.root = root
        self._context = _context(gx, root)
        asset = _frame_asset(self._context)
        batch_definition = _whole_frame(asset)
        self._checkpoints: dict[str, Any] = {}
        for spec in suites:
            for name, expectation in spec.checks:
                expectation.meta = {"name": name}
            # Given whole (add_expectation would rewrite a stored suite once per expectation).
            suite = self._context.suites.add_or_update(
                gx.ExpectationSuite(name=spec.name, expectations=[e for _, e in spec.checks])
            )
            definition = self._context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=spec.name, data=batch_definition, suite=suite)
            )
            actions = []
            if root is not None:
                actions.append(
                    gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[SITE])
                )
            self._checkpoints[spec.name] = self._context.checkpoints.add_or_update(
                gx.Checkpoint(
                    name=spec.name,
                    validation_definitions=[definition],
                    actions=actions,
                    result_format=dict(spec.result_format),
                )
            )

    def run(
        self,
        suite: str,
        frame: pd.DataFrame,
        *,
        parameters: Mapping[str, Any] | None = None,
        run_name: str | None = None,
    ) -> CheckpointRun:
        """Validate ``frame`` through ``suite``'s checkpoint; the result is stored (and its data
        docs page built) under ``run_name`` (default: the suite's name) and now's time."""
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.data_context.context_factory import project_manager

        # GX resolves suites and validation definitions through its one "current" context; a
        # process may hold several stores (state folders), so this one is made current for the run.
        project_manager.set_project(self._context)
        run_id = RunIdentifier(run_name=run_name or suite, run_time=datetime.now(UTC))
        checkpoint_result = self._checkpoints[suite].run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=dict(parameters or {}),
            run_id=run_id,
        )
        ((key, result),) = checkpoint_result.run_results.items()
        return CheckpointRun(result, "/".join(key.to_tuple()), self._page_of(key))

    def _page_of(self, key: Any) -> str | None:
        if self.root is None:
            return None
        urls = self._context.get_docs_sites_urls(resource_identifier=key, site_names=[SITE])
        if not urls or not urls[0].get("site_url"):
            return None
        page = Path(unquote(urlparse(urls[0]["site_url"]).path))
        return page.relative_to(self.root.resolve()).as_posix()

    def index_page(self) -> Path | None:
        """The data docs' ``index.html`` (None without a state folder)."""
        if self.root is None:
            return None
        return self.root / GX_FOLDER / "uncommitted" / "data_docs" / SITE / "index.html"


_STORES: dict[Path | None, GxStore] = {}
_STORES_LOCK = threading.RLock()


def open_store(gx: Any, root: Path | None, suites: Callable[[], Sequence[SuiteSpec]]) -> GxStore:
    """The store of ``root`` (None: ephemeral), built on first use in this process."""
    key = root.resolve() if root is not None else None
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            with _project_lock(key):
                store = GxStore(gx, key, suites())
            _STORES[key] = store
        return store


@contextlib.contextmanager
def _project_lock(root: Path | None) -> Iterator[None]:
    """Serialise creating and updating the project files across processes."""
    if root is None:
        yield
        return
    folder = root / GX_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".setup.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _context(gx: Any, root: Path | None) -> Any:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if root is None:
        context = gx.get_context(mode="ephemeral")
    else:
        context = gx.get_context(mode="file", project_root_dir=str(root))
        wanted = site_config()
        sites = context.variables.data_docs_sites or {}
        if SITE not in sites:
            context.add_data_docs_site(site_name=SITE, site_config=wanted)
        elif sites[SITE] != wanted:
            context.update_data_docs_site(site_name=SITE, site_config=wanted)
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def _frame_asset(context: Any) -> Any:
    try:
        source = context.data_sources.get("unlearnrec")
    except KeyError:
        source = context.data_sources.add_pandas("unlearnrec")
    try:
        return source.get_asset("frame")
    except LookupError:
        return source.add_dataframe_asset("frame")


def _whole_frame(asset: Any) -> Any:
    try:
        return asset.get_batch_definition("whole")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("whole")

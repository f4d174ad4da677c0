"""The four pages, one small render function each (run by the scripts in ``screens/``)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import evidence, queries, tables, ui
from unlearnrec.ledger import TicketStatus, utcnow

STATUS_ORDER = list(TicketStatus.ALL)
MODEL_ORDER = ["unlearned", "reference"]
_RED, _AMBER = "background-color: #fde2e1", "background-color: #fff3cd"


def _highlight(df: pd.DataFrame) -> Any:
    """Overdue rows red, escalated (not overdue) amber; the ``flag`` column says which in words,
    so the meaning does not rest on colour alone."""

    def row_style(row: pd.Series) -> list[str]:
        flag = str(row.get("flag", ""))
        style = _RED if "OVERDUE" in flag else _AMBER if "ESCALATED" in flag else ""
        return [style] * len(row)

    return df.style.apply(row_style, axis=1)


def _ticket_frame(rows: list[dict[str, Any]], now) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "external id": r["external_id"],
                "status": r["status"],
                "flag": queries.ticket_flag(r, now),
                "kind": r["kind"],
                "legal basis": r["legal_basis"],
                "subject (pseudonym)": r["subject_pseudonym"],
                "items": r["items"],
                "received": ui.stamp(r["received_at"]),
                "deadline": ui.stamp(r["deadline_at"]),
                "time left": (
                    queries.DASH
                    if r["status"] not in TicketStatus.OPEN
                    else queries.countdown(r["deadline_at"], now)
                ),
                "run": r["run_id"],
                "certificate": r["certificate"] or queries.DASH,
            }
            for r in rows
        ],
        columns=[
            "external id", "status", "flag", "time left", "deadline", "kind", "legal basis",
            "subject (pseudonym)", "items", "received", "run", "certificate",
        ],
    )  # fmt: skip


# -- overview -----------------------------------------------------------------------------------


def overview() -> None:
    ui.render_page("Overview", _overview)


def _overview(ledger: ui.Ledger) -> None:
    now = utcnow()
    tickets = ui.load_tickets(ledger.url)
    counts = queries.status_counts(tickets)
    due = queries.deadlines(tickets, now)
    overdue = [d for d in due if d["overdue"]]
    escalated = [d for d in due if d["escalated"]]
    verdicts = ui.certificate_verdicts(
        ledger.url, str(ledger.settings.public_key), str(ledger.settings.home)
    )
    failing = sorted(c for c, v in verdicts.items() if v != "PASS")

    cols = st.columns(6)
    cols[0].metric("Tickets", len(tickets))
    cols[1].metric("Open", len(due))
    cols[2].metric("Overdue", len(overdue))
    cols[3].metric("Escalated", len(escalated))
    cols[4].metric("Certified", counts.get(TicketStatus.CERTIFIED, 0))
    cols[5].metric("Certificates failing", f"{len(failing)} of {len(verdicts)}")

    if overdue:
        st.error(
            f"**{len(overdue)} overdue:** "
            + ", ".join(
                f"{ui.md(d['external_id'])} ({d['status']}, {d['time_left']})" for d in overdue
            )
        )
    if escalated:
        st.warning(
            f"**{len(escalated)} escalated, waiting for a person:** "
            + ", ".join(ui.md(d["external_id"]) for d in escalated)
        )
    if failing:
        st.error(f"**Certificates failing their live check:** {ui.md(', '.join(failing))}")
    audit = ui.audit_check(ledger.url, str(ledger.settings.certificates))
    if not audit["ok"]:
        shown = audit["problems"][:5]
        more = len(audit["problems"]) - len(shown)
        st.error(
            "**Audit trail broken** (`unlearnrec audit verify` for the full report): "
            + "; ".join(map(ui.md, shown))
            + (f"; and {more} more" if more > 0 else "")
        )
    else:
        st.caption(
            f"Audit trail: {audit['events']} events, hash chain intact; the "
            f"{audit['anchors']} certificate files' anchors are all in it."
        )

    st.subheader("Tickets by status")
    left, right = st.columns([3, 2])
    with left:
        frame = pd.DataFrame({"status": list(counts), "tickets": list(counts.values())})
        chart = (
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X("tickets:Q", title="tickets", axis=alt.Axis(tickMinStep=1)),
                y=alt.Y("status:N", sort=STATUS_ORDER, title=None),
                color=alt.Color("status:N", legend=None),
                tooltip=["status", "tickets"],
            )
            .properties(height=260)
        )
        st.altair_chart(chart, width="stretch")
    with right:
        st.dataframe(frame, hide_index=True, key="status_counts", height="content")

    # Full width: the deadline and the countdown must never be the columns cut off.
    st.subheader("Deadlines ahead")
    if due:
        frame = pd.DataFrame(
            [
                {
                    "external id": d["external_id"],
                    "status": d["status"],
                    "flag": d["flag"],
                    "time left": d["time_left"],
                    "deadline": ui.stamp(d["deadline_at"]),
                    "kind": d["kind"],
                    "legal basis": d["legal_basis"],
                }
                for d in due
            ]
        )
        st.dataframe(
            _highlight(frame), hide_index=True, key="deadlines", column_config=tables.DEADLINES
        )
    else:
        st.info("No open tickets: nothing is due.")

    st.subheader("Last runs")
    runs = ui.load_runs(ledger.url)[:5]
    if not runs:
        st.info("No unlearning run yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "run": r["id"],
                    "status": r["status"],
                    "stage": r["stage"],
                    "tickets": ", ".join(r["tickets"]),
                    "removed interactions": r["removed_count"],
                    "verification": r["mode"],
                    "tier": r["tier"],
                    "passed": r["passed"],
                    "fallback": r["fallback"],
                    "purge check": queries.purge_check_brief(r["purge_check"]),
                    "unlearning": ui.seconds(r["unlearn_seconds"]),
                    "speed-up vs retrain": ui.speedup(r["speedup"]),
                    "finished": ui.stamp(r["finished_at"]),
                }
                for r in runs
            ]
        ),
        hide_index=True,
        key="last_runs",
        column_config=tables.LAST_RUNS,
    )
    st.caption(
        "Each run's stage, tier, fallback and interactions removed: its Run detail under Models "
        "and data (or the table's Show/hide columns button)."
    )
    index = ledger.settings.var / queries.DATA_DOCS_INDEX
    if index.is_file():
        st.caption(
            "Validation reports (Great Expectations data docs: each pass's ticket batch and each "
            f"run's purge check): `{index}`"
        )


# -- tickets ------------------------------------------------------------------------------------


def tickets() -> None:
    ui.render_page("Tickets", _tickets)


def _date_range(label: str, values: list[date], key: str) -> tuple[date, ...]:
    lo, hi = min(values), max(values)
    return tuple(st.date_input(label, value=(lo, hi), key=key))


def _tickets(ledger: ui.Ledger) -> None:
    now = utcnow()
    rows = ui.load_tickets(ledger.url)
    if not rows:
        st.info("No tickets in the ledger yet.")
        return
    with st.expander("Filters", expanded=True, icon=":material/filter_list:"):
        a, b, c = st.columns(3)
        statuses = a.multiselect("Status", STATUS_ORDER, key="f_status")
        kinds = b.multiselect("Kind", sorted({r["kind"] for r in rows}), key="f_kind")
        bases = c.multiselect(
            "Legal basis", sorted({r["legal_basis"] for r in rows}), key="f_basis"
        )
        d, e, f = st.columns(3)
        with d:
            received = _date_range(
                "Received between", [r["received_at"].date() for r in rows], "f_received"
            )
        with e:
            deadline = _date_range(
                "Deadline between", [r["deadline_at"].date() for r in rows], "f_deadline"
            )
        search = f.text_input("External id contains", key="f_search")
    shown = queries.filter_tickets(
        rows,
        statuses=statuses,
        kinds=kinds,
        legal_bases=bases,
        received=received,
        deadline=deadline,
        search=search,
    )
    st.caption(
        f"{len(shown)} of {len(rows)} tickets. Subjects are shown as pseudonyms only. The "
        "pseudonym, received, items, run and certificate: in the ticket detail below (or the "
        "table's Show/hide columns button)."
    )
    st.dataframe(
        _highlight(_ticket_frame(shown, now)),
        hide_index=True,
        key="tickets_table",
        column_config=tables.TICKETS,
    )
    if not shown:
        st.info("No ticket matches these filters.")
        return

    st.subheader("Ticket detail")
    by_id = {r["external_id"]: r for r in shown}
    urgent = queries.deadlines(shown, now)  # the most urgent open ticket first
    choice = ui.select_from_query(
        "Ticket",
        list(by_id),
        "ticket",
        key="ticket_pick",
        default=urgent[0]["external_id"] if urgent else None,
    )
    _ticket_detail(ledger, by_id[choice], now)


def _ticket_detail(ledger: ui.Ledger, t: dict[str, Any], now) -> None:
    if queries.is_overdue(t, now):
        st.error(
            f"{ui.md(t['external_id'])} is OVERDUE: {queries.countdown(t['deadline_at'], now)}."
        )
    if t["status"] == TicketStatus.ESCALATED:
        st.warning(
            f"{ui.md(t['external_id'])} is ESCALATED: {ui.md(t['reason'] or 'no reason recorded')}"
        )
    cols = st.columns(4)
    cols[0].metric("Status", t["status"])
    left = queries.countdown(t["deadline_at"], now)
    if t["status"] not in TicketStatus.OPEN:
        cols[1].metric("Time left", queries.DASH)
    elif queries.is_overdue(t, now):
        cols[1].metric("Overdue by", left.removeprefix("overdue by "))
    else:
        cols[1].metric("Time left", left.removesuffix(" left"))
    cols[2].metric("Kind", t["kind"])
    cols[3].metric("Legal basis", t["legal_basis"])
    facts = {
        "subject (pseudonym)": t["subject_pseudonym"],
        "items named": t["items"],
        "received": ui.when(t["received_at"]),
        "deadline": ui.when(t["deadline_at"]),
        "extension": (
            f"{t['extension_days']} days: {t['extension_reason']}"
            if t["extension_days"]
            else queries.DASH
        ),
        "reason": t["reason"] or queries.DASH,
        "source": t["source"] or queries.DASH,
        "policy": t["policy"],
        "interactions removed": t["removed_interactions"],
        "last change": ui.when(t["updated_at"]),
    }
    st.dataframe(
        pd.DataFrame({"field": list(facts), "value": [str(v) for v in facts.values()]}),
        hide_index=True,
        key="ticket_facts",
        height="content",
        column_config=tables.FACTS,
    )
    links = st.columns(2)
    if t["run_id"] is not None:
        links[0].page_link(
            ui.page_file("models"),
            label=f"Run {t['run_id']}: what unlearning did",
            icon=":material/model_training:",
            query_params={"run": str(t["run_id"])},
        )
    if t["certificate"]:
        links[1].page_link(
            ui.page_file("certificates"),
            label=f"Certificate {ui.md(t['certificate'])}",
            icon=":material/verified:",
            query_params={"certificate": t["certificate"]},
        )
    st.markdown("**Audit timeline** (the ticket's events and its run's)")
    events = ui.load_timeline(ledger.url, t["id"], t["run_id"])
    st.dataframe(
        pd.DataFrame(
            [{**e, "at": ui.stamp(e["at"])} for e in events],
            columns=["position", "at", "actor", "action", "entity", "details", "hash"],
        ),
        hide_index=True,
        key="timeline",
        height="content",
        column_config=tables.TIMELINE,
    )
    with st.expander("The events in full: details and hashes"):
        st.markdown(
            "\n".join(
                f"- **{e['position']}** · {ui.md(ui.when(e['at']))} · {ui.md(e['action'])} · "
                f"hash {ui.md(e['hash'])}…: {ui.md(e['details'])}"
                for e in events
            )
            or queries.DASH
        )


# -- certificates -------------------------------------------------------------------------------


def certificates() -> None:
    ui.render_page("Certificates", _certificates)


def _certificates(ledger: ui.Ledger) -> None:
    rows = ui.load_certificates(ledger.url)
    if not rows:
        st.info("No certificate has been issued yet.")
        return
    key_path = ledger.settings.public_key
    verdicts = ui.certificate_verdicts(ledger.url, str(key_path), str(ledger.settings.home))
    failing = [c for c, v in verdicts.items() if v != "PASS"]
    st.caption(
        f"{len(rows)} certificates, {len(rows) - len(failing)} PASS, {len(failing)} FAIL "
        f"(checked against the public key `{key_path}`)"
    )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "certificate": r["certificate_id"],
                    "check": verdicts.get(r["certificate_id"], queries.DASH),
                    "status": r["status"],
                    "tickets": ", ".join(r["tickets"]),
                    "run": r["run_id"],
                    "issued": ui.stamp(r["issued_at"]),
                    "audit position": r["audit_position"],
                    "file": queries.certificate_path(r, ledger.settings.home).name,
                }
                for r in rows
            ]
        ).style.map(
            lambda v: _RED if v == "FAIL" else "background-color: #d1f2d9" if v == "PASS" else "",
            subset=["check"],
        ),
        hide_index=True,
        key="certificates_table",
        column_config=tables.CERTIFICATES,
    )

    revoked = ui.load_revocations(ledger.url)
    if revoked:
        st.subheader("Revoked certificates")
        st.caption(
            "Signed but never recorded in the ledger (a run stopped between signing and its "
            "commit): revoked and deleted. A copy of one does not verify against the ledger."
        )
        st.dataframe(
            pd.DataFrame(revoked),
            hide_index=True,
            key="revoked_table",
            column_config=tables.REVOKED,
        )
        with st.expander("Revocation reasons in full"):
            st.markdown(
                "\n".join(
                    f"- {ui.md(r['certificate'])} (audit position {r['audit position']}): "
                    f"{ui.md(r['reason'] or queries.DASH)}"
                    for r in revoked
                )
            )

    st.subheader("Certificate detail")
    by_id = {r["certificate_id"]: r for r in rows}
    choice = ui.select_from_query(
        "Certificate",
        list(by_id),
        "certificate",
        key="cert_pick",
        default=failing[0] if failing else None,  # a failing certificate first
    )
    row = by_id[choice]
    check = queries.check_certificate(row, key_path, ledger.settings.home)  # live, uncached
    if check.ok:
        st.success(
            f"**PASS**: {ui.md(choice)} is signed by key {ui.md(check.key_id or '')}, "
            "unaltered, and matches the "
            "ledger (file sha256, digest, key id).",
            icon=":material/verified:",
        )
    else:
        st.error(
            f"**FAIL**: {ui.md(choice)} does not verify.\n\n"
            + "\n".join(f"- {ui.md(p)}" for p in check.problems),
            icon=":material/gpp_bad:",
        )
    st.dataframe(
        pd.DataFrame(
            [
                {"check": name, "result": {True: "PASS", False: "FAIL", None: "not run"}[ok]}
                for name, ok in check.checks
            ]
        ),
        hide_index=True,
        key="cert_checks",
        height="content",
    )
    doc = check.document or {}
    if doc:
        tickets = {t["id"]: t for t in ui.load_tickets(ledger.url)}
        for note in queries.certificate_notes(doc, tickets):
            st.warning(f"Disagrees with the ledger: {ui.md(note)}.", icon=":material/rule:")
        _certificate_facts(doc, row)
        st.page_link(
            ui.page_file("models"),
            label=f"Run {row['run_id']}: its purge check, data docs and verification",
            icon=":material/model_training:",
            query_params={"run": str(row["run_id"])},
        )
        _membership_evidence(doc)
    a, b = st.columns(2)
    if check.path.is_file():
        a.download_button(
            "Download the certificate (JSON)",
            data=check.path.read_bytes(),
            file_name=check.path.name,
            mime="application/json",
            icon=":material/download:",
        )
    if key_path.is_file():
        b.download_button(
            "Download the public key (PEM)",
            data=key_path.read_bytes(),
            file_name="public_key.pem",
            mime="application/x-pem-file",
            icon=":material/key:",
        )
    else:
        b.warning(f"Public key missing at `{key_path}`: signatures cannot be checked.")
    if doc:
        with st.expander("The certificate document"):
            st.json(doc, expanded=2)
    st.caption(
        "Check it offline: `unlearnrec certificate verify FILE --public-key public_key.pem`."
    )


def _certificate_facts(doc: dict[str, Any], row: dict[str, Any]) -> None:
    def get(*path: str) -> Any:
        value: Any = doc
        for p in path:
            value = value.get(p) if isinstance(value, dict) else None
        return queries.DASH if value is None else value

    v = doc.get("verification") or {}
    facts = {
        "status": get("status"),
        "tickets": ", ".join(t.get("external_id", "?") for t in doc.get("tickets") or []),
        "subjects (pseudonyms)": ", ".join(doc.get("subjects") or []) or queries.DASH,
        "interactions removed": get("removed_interactions", "count"),
        "removed interactions hash": get("removed_interactions", "hash"),
        "dataset before → after (DVC)": (
            f"{get('dataset', 'before', 'dvc_md5')} → {get('dataset', 'after', 'dvc_md5')}"
        ),
        "model before → after (sha256)": (
            f"{str(get('model', 'before', 'sha256'))[:16]} → "
            f"{str(get('model', 'after', 'sha256'))[:16]}"
        ),
        "method": f"{get('method', 'name')} on {get('method', 'device')}",
        "verification": (
            f"{v.get('mode', queries.DASH)}, passed={v.get('passed')}, "
            f"fallback={v.get('fallback') or queries.DASH}"
        ),
        "purge check (Great Expectations)": queries.purge_check_outcome(doc.get("purge_check")),
        # Its own row: a result id is a long path, too long to share a cell with the outcome.
        "purge check result": (doc.get("purge_check") or {}).get("result_id") or queries.DASH,
        "policy": f"{get('policy', 'id')} v{get('policy', 'version')}",
        "audit position": f"{get('audit', 'position')} ({str(get('audit', 'event_hash'))[:16]}…)",
        "issued": get("issued_at"),
        "supersedes": get("supersedes"),
        "ledger row sha256": row["sha256"],
    }
    st.dataframe(
        pd.DataFrame({"field": list(facts), "value": [str(x) for x in facts.values()]}),
        hide_index=True,
        key="cert_facts",
        height="content",
        column_config=tables.FACTS,
    )


def _membership_evidence(doc: dict[str, Any]) -> None:
    """The reference-model membership audit the certificate carries, as figures and a picture."""
    found = evidence.membership_evidence(doc.get("verification"))
    if found is None:
        return
    st.subheader("Membership evidence")
    refs = found.get("references") or {}
    verdict = found.get("passed")
    margins = found.get("thresholds") or {}
    st.caption(
        f"A likelihood-ratio membership attack ({ui.md(str(found.get('attack', 'lira')))} "
        f"offline) calibrated with {ui.md(str(found.get('k')))} reference models trained on "
        "halves of the training data: each forgotten pair's score under a model, compared with "
        "its scores under the references that never saw it. Forgotten pairs are set beside "
        "held-out pairs no model was trained on. A model that forgot them shows the two "
        "populations on top of each other and a ROC on the dashed chance line, as the model "
        "retrained without them does; the original model sets them apart. "
        + (
            f"Against the retrained model (TPR at 1% FPR within "
            f"{ui.md(margins.get('tpr_margin'))}, AUC within "
            f"{ui.md(margins.get('auc_margin'))}): "
            f"**{'PASS' if verdict else 'FAIL'}**."
            if verdict is not None
            else ""
        )
    )
    for reason in found.get("reasons") or []:
        st.warning(ui.md(reason), icon=":material/rule:")
    st.dataframe(evidence.figures_frame(found), hide_index=True, key="membership_figures")
    hist, roc = evidence.charts(found)
    st.altair_chart(hist, key="membership_scores", width="content")
    st.altair_chart(roc, key="membership_roc", width="content")
    hashes = refs.get("sha256") or []
    if hashes:
        st.caption(
            "Reference models (sha256 of their weights): "
            + ", ".join(f"`{ui.md(h[:16])}…`" for h in hashes)
        )


# -- models and data ----------------------------------------------------------------------------


def models() -> None:
    ui.render_page("Models and data", _models)


def _models(ledger: ui.Ledger) -> None:
    runs = ui.load_runs(ledger.url)
    datasets, models_ = ui.load_versions(ledger.url)

    st.subheader("Forgetting and utility across runs")
    metrics = queries.metric_rows(runs)
    if metrics:
        frame = pd.DataFrame(metrics)
        for kind, title in (("utility", "Utility"), ("forgetting", "Forgetting")):
            part = frame[frame["kind"] == kind]
            if part.empty:
                continue
            chart = (
                alt.Chart(part)
                .mark_bar()
                .encode(
                    x=alt.X("run:N", title=None, axis=alt.Axis(labelAngle=0)),
                    xOffset=alt.XOffset("model:N", sort=MODEL_ORDER),
                    y=alt.Y("value:Q", title=None),
                    color=alt.Color("model:N", sort=MODEL_ORDER, title="model"),
                    tooltip=["run", "model", "metric", alt.Tooltip("value:Q", format=".4f")],
                )
                .properties(width=170, height=200)
                .facet(
                    column=alt.Column("metric:N", title=None, sort=list(queries.METRICS.values())),
                    title=f"{title}: unlearned model vs retrained reference",
                )
                .resolve_scale(y="independent")
            )
            st.altair_chart(chart)
        st.dataframe(
            pd.DataFrame(queries.metric_table(runs)),
            hide_index=True,
            key="metric_table",
            column_config=tables.METRICS,
            placeholder=queries.DASH,
        )
        st.caption(
            "MI-BF / MI-NG: membership-inference ratios on the erased edges (higher means more "
            "forgotten; the reference is what a retrain forgets). MIA AUC: the attack's AUC, "
            "checked on both sides: within the policy's margin of 0.5 it cannot tell erased "
            "edges from unseen ones; far above 0.5 the model still remembers them "
            "(under-unlearning); far below 0.5 it scores them under unseen ones "
            "(over-unlearning), itself a membership signal. Both fail verification. Erased "
            "users and taken-down items sit far below 0.5 under retrain too, so for them the "
            "lower bound is checked on the batch's other erased edges."
        )
    else:
        st.info("No run has verification figures yet.")

    st.subheader("Time: unlearning vs retraining")
    if runs:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "run": r["id"],
                        "unlearning": ui.seconds(r["unlearn_seconds"]),
                        "encoder refresh (offline)": ui.seconds(
                            r["timings"].get("encoder_refresh_seconds")
                        ),
                        "retrain": ui.seconds(r["retrain_seconds"]),
                        "retrain measured by": r["retrain_source"] or queries.DASH,
                        "speed-up": ui.speedup(r["speedup"]),
                    }
                    for r in runs
                ]
            ),
            hide_index=True,
            key="timing_table",
            column_config=tables.TIMING,
        )
        timed = [
            {"run": f"run {r['id']}", "what": what, "seconds": r[col]}
            for r in runs
            for what, col in (("unlearning", "unlearn_seconds"), ("retrain", "retrain_seconds"))
            if r[col] is not None
        ]
        if timed:
            base = alt.Chart(pd.DataFrame(timed)).encode(
                y=alt.Y("run:N", title=None),
                yOffset=alt.YOffset("what:N", sort=["unlearning", "retrain"]),
                x=alt.X("seconds:Q", title="seconds"),
                color=alt.Color("what:N", sort=["unlearning", "retrain"], title=None),
                tooltip=["run", "what", alt.Tooltip("seconds:Q", format=".2f")],
            )
            labels = base.mark_text(align="left", dx=4).encode(
                text=alt.Text("seconds:Q", format=".2f"), color=alt.value("#333")
            )
            st.altair_chart(
                (base.mark_bar() + labels).properties(title="Wall-clock time per run"),
                width="stretch",
            )
        _run_detail(runs, ledger.settings.var)
    else:
        st.info("No unlearning run yet.")

    st.subheader("Version lineage")
    if datasets or models_:
        st.graphviz_chart(queries.lineage_dot(datasets, models_))
        st.markdown("**Dataset versions** (DVC-tracked)")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        **d,
                        "dvc": tables.short(d["dvc_md5"]),
                        "content": tables.short(d["content_hash"]),
                        "created_at": ui.stamp(d["created_at"]),
                    }
                    for d in datasets
                ],
                columns=_DATASET_COLUMNS,
            ),
            hide_index=True,
            key="datasets_table",
            placeholder=queries.DASH,
            column_config=tables.DATASET_VERSIONS,
        )
        st.markdown("**Model versions**")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        **m,
                        "sha": tables.short(m["sha256"]),
                        "dvc": tables.short(m["dvc_md5"]),
                        "created_at": ui.stamp(m["created_at"]),
                    }
                    for m in models_
                ],
                columns=_MODEL_COLUMNS,
            ),
            hide_index=True,
            key="models_table",
            placeholder=queries.DASH,
            column_config=tables.MODEL_VERSIONS,
        )
        with st.expander("Versions in full: hashes and model metrics"):
            st.markdown(
                "\n".join(
                    [
                        f"- dataset {d['id']}: dvc md5 {ui.md(d['dvc_md5'])}, content hash "
                        f"{ui.md(d['content_hash'])}"
                        for d in datasets
                    ]
                    + [
                        f"- model {m['id']}: sha256 {ui.md(m['sha256'])}, dvc md5 "
                        f"{ui.md(m['dvc_md5'])}"
                        for m in models_
                    ]
                )
            )
            st.json({f"model {m['id']}": json.loads(m["metrics"]) for m in models_}, expanded=1)
    else:
        st.info("No dataset or model version recorded yet.")


_DATASET_COLUMNS = [
    "id", "dvc", "content", "parent_id", "run_id", "users", "items", "interactions",
    "holds_erased_data", "purged", "created_at", "dvc_md5", "content_hash",
]  # fmt: skip
_MODEL_COLUMNS = [
    "id", "kind", "sha", "dvc", "dataset_version_id", "parent_id", "run_id", "created_at",
    "sha256", "dvc_md5", "metrics",
]  # fmt: skip


def _run_detail(runs: list[dict[str, Any]], var: Path) -> None:
    st.subheader("Run detail")
    by_id = {r["id"]: r for r in runs}
    choice = ui.select_from_query(
        "Run", list(by_id), "run", key="run_pick", fmt=lambda i: f"run {i}"
    )
    r = by_id[choice]
    cols = st.columns(5)
    cols[0].metric("Verification", r["mode"])
    cols[1].metric("Tier", r["tier"])
    cols[2].metric("Passed", {True: "yes", False: "no"}.get(r["passed"], queries.DASH))
    cols[3].metric("Fallback", r["fallback"])
    cols[4].metric("Speed-up vs retrain", ui.speedup(r["speedup"]))
    exact = (r["verification"].exact if r["verification"] else None) or {}
    if exact:
        st.caption(
            f"Exact tier: shards retrained {exact.get('shards_retrained')} of "
            f"{exact.get('shards')} ({ui.md(str(exact.get('partition')))} partition); erased "
            f"pairs left in any shard: {exact.get('removed_pairs_in_shards')}."
        )
    if r["reasons"]:
        st.warning("Verification notes: " + "; ".join(ui.md(str(x)) for x in r["reasons"]))
    if r["error"]:
        st.error(f"Run error: {ui.md(r['error'])}")
    st.markdown(
        f"Status {ui.md(r['status'])}, stage {ui.md(r['stage'])} · "
        f"tickets: {ui.md(', '.join(r['tickets']))} · removed interactions: "
        f"{r['removed_count']} · method {ui.md(r['method'])} on {ui.md(r['device'])} · "
        f"policy {ui.md(str(r['policy']))} · "
        f"datasets {r['dataset_before_id']} → {r['dataset_after_id']} · "
        f"models {r['model_before_id']} → {r['model_after_id']} "
        f"(reference {r['reference_model_id'] or queries.DASH})"
    )
    _purge_check(r["purge_check"], var)
    with st.expander("Verification record, purge check and timings"):
        st.json(
            {"verification": r["record"], "purge_check": r["purge_check"], "timings": r["timings"]},
            expanded=1,
        )


def _purge_check(check: dict[str, Any], var: Path) -> None:
    """The run's purge check (Great Expectations) and its data-docs page: where it lies under
    the state folder, and to download. (Not shown inline: GX's pages load their scripts from
    public CDNs, which the dashboard's own origin does not run.)"""
    if not check:
        st.caption(
            "Purge check: none recorded (a run with nothing to erase, or one recorded before "
            "the ledger kept its purge check)."
        )
        return
    line = (
        f"**Purge check** (Great Expectations suite {ui.md(str(check.get('suite')))}): "
        f"{ui.md(queries.purge_check_outcome(check))}."
    )
    if check.get("success"):
        st.success(line, icon=":material/fact_check:")
    else:
        st.error(line, icon=":material/rule:")
    page = queries.data_docs_page(check, var)
    index = var / queries.DATA_DOCS_INDEX
    if page is None or not page.is_file():
        st.warning(
            f"Its data-docs page is not under `{var / queries.GX_FOLDER}`"
            + (f" (recorded as `{check['data_docs']}`)." if check.get("data_docs") else ".")
        )
        return
    st.caption(
        f"Validation result `{check.get('result_id')}`; its data-docs page: `{page}` "
        f"(every result: `{index}`)."
    )
    st.download_button(
        "Download the purge check's data-docs page (HTML)",
        data=page.read_bytes(),
        file_name=f"purge-check-{page.parent.parent.name}.html",
        mime="text/html",
        icon=":material/download:",
        key="purge_docs_download",
    )

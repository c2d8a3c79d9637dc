"""report.md and the PNG plots of one run, its figures beside the goals of ARCHITECTURE.md ("Goals,
and how they are measured")."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# (key, what, goal, stretch?) as ARCHITECTURE.md states them, at 10,000 pods.
GOALS = [
    ("register_vs_endpointslice", "pod Ready -> znode present, p50 and p99", "no higher than EndpointSlice's", False),
    ("register_p50", "pod Ready -> znode present, p50", "<= 50 ms", True),
    ("register_p99", "pod Ready -> znode present, p99", "<= 250 ms", True),
    (
        "deregister_vs_endpointslice",
        "pod not Ready or deleted -> znode gone, p99",
        "no higher than EndpointSlice's",
        False,
    ),
    ("deregister_p99", "pod not Ready or deleted -> znode gone, p99", "<= 250 ms", True),
    ("cold_resync", "cold resync by a new leader (all registrations)", "<= 1 s", False),
    ("crash_failover", "crash failover: all back after the old session expires", "<= 1 s", False),
    ("graceful_handover", "graceful handover: members that a client sees disappear", "0", False),
    ("handover_exit", "graceful handover: old leader gone after SIGTERM", "<= 5 s", False),
    ("memory", "RSS per replica (the most any replica reached)", "<= 150 MiB", False),
    ("memory_stretch", "RSS per replica (the most any replica reached)", "<= 100 MiB", True),
    ("leader_cpu", "leader CPU per 1,000 pod transitions", "<= 2 s", False),
    ("standby_cpu", "a standby's CPU per 1,000 pod transitions", "<= 0.5 s", False),
    ("scaling_ratio", "scaling: CPU per transition at 100,000 pods / at 1,000", "<= 1.5", False),
]


def _met(value, limit) -> bool | None:
    return None if value is None else value <= limit


def _largest(results: dict) -> dict:
    runs = results.get("runs") or {}
    return runs.get(str(results.get("pods")), {})


def goals(results: dict) -> list[dict]:
    """The verdict on each goal; None (n/a) where the run has no figure for it."""
    reg = results["register_latency_ms"]
    ours, eps = reg["ours"], reg["endpointslice"]
    dereg = results["deregister_latency_ms"]
    dours, deps = dereg["ours"], dereg.get("endpointslice") or {}
    rss = results["rss_mib"]
    sampled = [v for v in (rss.get("leader_loaded"), rss.get("standby_loaded"), rss.get("after_failover")) if v]
    worst = max([*sampled, rss.get("peak_any_replica") or 0]) or None
    cost = _largest(results).get("cost") or {}
    leader_cpu = results.get("cpu_s_per_1000_transitions")
    standby_cpu = results.get("standby_cpu_s_per_1000_transitions", cost.get("standby_cpu_s_per_1000_transitions"))
    exit_s = results.get(
        "handover_old_leader_exit_s", (_largest(results).get("handover") or {}).get("old_leader_exit_s")
    )
    ratio = results.get("scaling_cpu_ratio")
    by_layout = (results.get("scaling") or {}).get("cpu_ratio_by_layout") or {}

    def no_higher(a: dict, b: dict, *qs: str) -> bool | None:
        if any(a.get(q) is None or b.get(q) is None for q in qs):
            return None
        return all(a[q] <= b[q] for q in qs)

    memory_text = (
        f"leader {rss.get('leader_loaded')} MiB, standby {rss.get('standby_loaded')} MiB loaded"
        + (f", {rss['after_failover']} MiB after the failovers" if rss.get("after_failover") else "")
        + f"; peak (VmHWM) {rss.get('peak_any_replica')} MiB"
    )
    measured = {
        "register_vs_endpointslice": (
            f"p50 {ours['p50']} vs {eps['p50']} ms, p99 {ours['p99']} vs {eps['p99']} ms",
            no_higher(ours, eps, "p50", "p99"),
        ),
        "register_p50": (f"{ours['p50']} ms", _met(ours["p50"], 50)),
        "register_p99": (f"{ours['p99']} ms", _met(ours["p99"], 250)),
        "deregister_vs_endpointslice": (f"p99 {dours['p99']} vs {deps.get('p99')} ms", no_higher(dours, deps, "p99")),
        "deregister_p99": (f"{dours['p99']} ms", _met(dours["p99"], 250)),
        "cold_resync": (f"{results['cold_resync_s']} s", _met(results["cold_resync_s"], 1.0)),
        "crash_failover": (f"{results['crash_failover_gap_s']} s", _met(results["crash_failover_gap_s"], 1.0)),
        "graceful_handover": (f"{results['graceful_handover_removals']}", results["graceful_handover_removals"] == 0),
        "handover_exit": (f"{exit_s} s", _met(exit_s, 5.0)),
        "memory": (memory_text, _met(worst, 150)),
        "memory_stretch": (f"{worst} MiB", _met(worst, 100)),
        "leader_cpu": (f"{leader_cpu} s", _met(leader_cpu, 2.0)),
        "standby_cpu": (f"{standby_cpu} s", _met(standby_cpu, 0.5)),
        "scaling_ratio": _scaling_verdict(ratio, by_layout),
    }
    return [
        {
            "goal": key,
            "what": what,
            "target": target,
            "stretch": stretch,
            "measured": measured[key][0],
            "met": measured[key][1],
        }
        for key, what, target, stretch in GOALS
    ]


def _scaling_verdict(ratio: float | None, by_layout: dict[str, float | None]) -> tuple[str, bool | None]:
    """Met only if every layout's ratio is measured and within 1.5: a layout whose largest N could
    not be measured (the replica did not settle) did not scale."""
    if not by_layout:
        return (f"{ratio}" if ratio is not None else "not measured (see Scaling)"), _met(ratio, 1.5)
    text = ", ".join(
        f"{layout} {v if v is not None else 'not measured (see Scaling)'}" for layout, v in by_layout.items()
    )
    return text, all(v is not None and v <= 1.5 for v in by_layout.values())


def _verdict(met: bool | None, stretch: bool = False) -> str:
    if met is None:
        return "n/a"
    if stretch:
        return "met (stretch)" if met else "missed (stretch)"
    return "met" if met else "**missed**"


def _f(v) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, float | int) else str(v)


def _row(name: str, s: dict) -> str:
    cells = [str(s.get("count", 0))] + [_f(s.get(q)) for q in ("min", "p50", "p95", "p99", "max")]
    return f"| {name} | " + " | ".join(cells) + f" | {s.get('missing', 0)} |"


LATENCY_HEAD = (
    "| | pods | min ms | p50 ms | p95 ms | p99 ms | max ms | missing |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def write(out: Path, results: dict, plots: dict | None) -> None:
    """report.md (and the plots, given their data) in `out`. A hand-written `analysis.md` there,
    if any, is included as the section on what the profiles show."""
    order = [
        "latency_register.png",
        "latency_deregister.png",
        "burst_timeline.png",
        "failover.png",
        "profiles.png",
        "scaling.png",
    ]
    images = _plots(out, results, plots) if plots else [name for name in order if (out / name).exists()]
    if plots and results.get("scaling") and scaling_plot(out, results["scaling"]):
        images.append("scaling.png")
    analysis = out / "analysis.md"
    lines = _report(results, images, analysis.read_text().rstrip().splitlines() if analysis.exists() else [])
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _report(results: dict, images: list[str], analysis: list[str]) -> list[str]:
    m = results["machine"]
    n = results["pods"]
    load_end = results.get("load_avg_at_end")
    lines = [
        f"# zkregistry benchmark, {results['date']}",
        "",
        f"`{results.get('command', 'python -m benchmarks.run')}` (`make bench` runs it through tools/env.sh): "
        f"{results['duration_s'] / 60:.1f} minutes on {m['cpus']} CPUs (load average at the start "
        f"{m['load_avg_at_start']}" + (f", at the end {load_end}" if load_end else "") + ", shared with other "
        f"work), Python {m['python']}, commit {m['commit']}. "
        "A local control plane (kwokctl, binary runtime), a 3-server ZooKeeper ensemble on loopback and "
        "three operator replicas (`--session-timeout 4`), all on this machine.",
        "",
        f'## Goals (ARCHITECTURE.md, "Goals, and how they are measured"), at N = {n} pods'
        + ("" if n >= 10_000 else " (the goals are stated at 10,000 pods)"),
        "",
        f"Registration latency: the last {results['burst_pods']} of the {n} pods becoming Ready, each measured."
        if results["burst_pods"] < n
        else f"Registration latency: all {n} pods becoming Ready at once, each measured.",
        "",
        "| what | goal | measured | |",
        "| --- | --- | --- | --- |",
    ]
    for g in results["goals"]:
        target = f"{g['target']} (stretch)" if g.get("stretch") else g["target"]
        lines.append(f"| {g['what']} | {target} | {g['measured']} | {_verdict(g['met'], g.get('stretch', False))} |")
    c = results["zk_ceiling"]
    kcm = results.get("kcm_cpu_s_per_1000_transitions")
    lines += [
        "",
        f"Cost at N = {n}: CPU seconds per 1,000 pod transitions: leader {results['cpu_s_per_1000_transitions']}, "
        f"a standby {results.get('standby_cpu_s_per_1000_transitions')}"
        + (f", kube-controller-manager {kcm} (all its controllers, in the same phases)" if kcm is not None else "")
        + f"; {results['zk_ops_per_transition']} ZooKeeper operations per transition; idle leader "
        f"{results['rss_mib']['leader_idle']} MiB RSS. The ZooKeeper ceiling: {c['best_creates_per_s']} "
        f"creates/s (10,000 EPHEMERAL creates in pipelined multis of 100 would take {c['seconds_for_10000_best']} s; "
        f"runs {c['runs']}).",
        "",
    ]
    lines += [*analysis, ""] if analysis else []
    if results.get("scaling"):
        lines += _scaling_section(results["scaling"])
    for pods in results["pods_run"]:
        lines += _run_section(results["runs"][str(pods)])
    lines += ["## Plots", ""] + [f"![{name}]({name})" for name in images] + [""]
    lines += _profiles_section(results)
    lines += _method()
    return lines


def _scaling_section(sc: dict) -> list[str]:
    lines = [
        "## Scaling: one replica without a control plane (`python -m benchmarks.scaling`)",
        "",
        f"{sc['method']}: {sc['transitions_per_n']} measured transitions per N after a warm-up, the CPU time of "
        f"the whole process. The ensemble's servers: heap {sc['ensemble']['heap']}, jute.maxbuffer "
        f"{sc['ensemble']['jute_maxbuffer']} (see the analysis for why not devenv's defaults). A child stops when its "
        f"RSS passes {sc.get('rss_cap_mib')} MiB. {sc['seconds']:.0f} s in all"
        + (f"; load average at its end {sc['load_avg_at_end']}" if sc.get("load_avg_at_end") else "")
        + ".",
        "",
        f"CPU per transition at the largest N over the smallest: {sc.get('cpu_ratio_by_layout')} (goal <= 1.5).",
        "",
        "| layout | N | registries | largest path | CPU us / transition | listings / transition | latency p50 / p99 ms "
        "| retained bytes / pod | RSS MiB (peak) | N written s | settled s | resync s | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for r in sc["table"]:
        lines.append(
            f"| {r['layout']} | {r['pods']} | {_f(r.get('registries'))} | {_f(r.get('largest_path'))} "
            f"| {_f(r.get('cpu_us_per_transition'))} | {_f(r.get('listings_per_transition'))} "
            f"| {_f(r.get('latency_p50_ms'))} / {_f(r.get('latency_p99_ms'))} | {_f(r.get('bytes_per_pod'))} "
            f"| {_f(r.get('rss_registered_mib'))} ({_f(r.get('rss_peak_mib'))}) | {_f(r.get('register_s'))} "
            f"| {_f(r.get('settled_s'))}{'' if r.get('settled') in (None, True) else ' (not settled)'} "
            f"| {_f(r.get('resync_s'))} | {r.get('note') or ''} |"
        )
    lines.append("")
    for layout, by_n in sc["runs"].items():
        for n, r in by_n.items():
            t = r.get("transitions") or {}
            if t.get("cpu_us_per_transition_by_thread"):
                threads = ", ".join(f"{k} {v}" for k, v in t["cpu_us_per_transition_by_thread"].items())
                lines.append(
                    f"- {layout} N={n}: CPU us per transition by thread: {threads}; garbage collector "
                    f"{t.get('gc_us_per_transition')}; ZooKeeper reads per transition "
                    f"{t['zookeeper_reads']['per_transition']}."
                )
            m = r.get("memory")
            if m:
                parts = ", ".join(f"{k} {v}" for k, v in m["bytes_per_pod"].items())
                lines.append(f"- {layout} N={n}: retained bytes per pod (tracemalloc): {parts}.")
    return [*lines, ""]


def _run_section(run: dict) -> list[str]:
    reg, n = run["register"], run["pods"]
    burst = run.get("burst_pods", n)
    lines = [f"## N = {n}: {run['deployments']} Deployments, {run['registries']} ServiceRegistries", ""]
    bulk = run.get("bulk_registration")
    if bulk and bulk.get("annotated_from_start"):
        per = (bulk.get("cost") or {}).get("per_1000_transitions") or {}
        lines += [
            f"### The first {bulk['znodes']} pods, from Deployments annotated from their creation ({bulk['seconds']} s "
            f"from the Deployments' creation to every pod Ready and registered; pods became Ready at "
            f"{bulk.get('pods_ready_per_s')} per second)",
            "",
            LATENCY_HEAD,
            _row("zkregistry: znode seen by a watcher", bulk["ours"]),
            _row("zkregistry: znode ctime", bulk["ours_ctime"]),
            _row("EndpointSlice: endpoint seen ready", bulk["endpointslice"]),
            "",
            *_own_view(bulk, bulk.get("controller_ms")),
            "CPU seconds per 1,000 transitions in this phase: "
            + ", ".join(f"{role} {v}" for role, v in per.items())
            + f" (leader: {bulk['leader_cpu_s']} CPU s, {bulk['leader_zk_ops']} ZooKeeper operations).",
            "",
        ]
    elif bulk:
        lines += [
            f"The first {bulk['znodes']} pods came up before their Deployments opted in ({bulk['prebuild_s']} s); "
            f"once annotated, all {bulk['znodes']} were registered {bulk['seconds']} s later.",
            "",
        ]
    lines += [
        f"### Registration: {burst} pods become Ready, {n} in all ({reg['seconds']} s from their Deployments' "
        f"creation to everything converged; pods became Ready at {reg['pods_ready_per_s']} per second)",
        "",
        LATENCY_HEAD,
        _row("zkregistry: znode seen by a watcher", reg["ours"]),
        _row("zkregistry: znode ctime", reg["ours_ctime"]),
        _row("EndpointSlice: endpoint seen ready", reg["endpointslice"]),
        f"| ratio ours / EndpointSlice | | | {reg['ratio']['p50']} | {reg['ratio']['p95']} | {reg['ratio']['p99']} "
        f"| {reg['ratio']['max']} | |",
        "",
        *_own_view(
            reg,
            reg.get("controller_ms")
            or run.get("cost", {}).get("phases", {}).get("register", {}).get("leader_ready_to_registered_ms"),
        ),
        "### Churn at N (scale down by 10 % or 500 pods, rolling update of "
        f"{run.get('rolled_deployments')} Deployments, scale back up)",
        "",
        LATENCY_HEAD,
    ]
    for name, figures in run["churn"].items():
        for kind in ("deregister", "register"):
            f = figures[kind]
            if f["ours"]["count"] or f["ours"]["missing"]:
                lines.append(_row(f"{name} ({figures['seconds']} s): {kind}, zkregistry", f["ours"]))
                lines.append(_row(f"{name}: {kind}, EndpointSlice", f["endpointslice"]))
    d = run["deregister"]
    lines += [
        _row("**all deregistrations, zkregistry**", d["ours"]),
        _row("**all deregistrations, EndpointSlice**", d["endpointslice"]),
        "",
    ]
    h, c = run["handover"], run["crash"]
    lines += [
        "### Failover",
        "",
        f"- Graceful handover (SIGTERM to {h['leader']}): {h['successor']} took over {h['taken_over']} of "
        f"{h['znodes']} znodes; the last {h['cold_resync_s']} s after the old leader's election znode went "
        f"(first after {h['first_takeover_after_election_s']} s; {h['from_sigterm_s']} s after SIGTERM"
        + (
            f"; the successor logged its election {h['successor_logged_elected_after_s']} s after"
            if h.get("successor_logged_elected_after_s") is not None
            else ""
        )
        + "). "
        f"A watching client saw **{h['removals_seen']}** pods disappear"
        + (f" ({h['names_added']} znode names added, {h['names_removed']} removed)" if "names_added" in h else "")
        + f". The old leader exited {h['old_leader_exit_s']} s after SIGTERM (`handover complete` logged: "
        f"{h['handover_complete_logged']}; `handover deadline passed` logged: {h.get('deadline_passed_logged')}).",
        f"- Crash (kill -9 of {c['leader']}): its session expired {c['expiry_seen_after_kill_s']} s later "
        f"(session timeout {c['session_timeout_s']} s); {c['removals_seen']} removals seen; every registration "
        f"was back **{c['gap_s']} s** after the first removal ({c['gap_by_ctime_s']} s by the re-created "
        f"znodes' ctime), {c['recreated']} re-created by {c['successor']}"
        + (
            f", which logged its election {c['successor_logged_elected_after_expiry_s']} s after the first "
            f"removal and re-created the first znode {c['first_recreated_after_expiry_s']} s after it."
            if c.get("successor_logged_elected_after_expiry_s") is not None
            else "."
        ),
        "",
        "### Cost",
        "",
        "| replica | role | RSS MiB loaded | peak | RSS after the failovers | peak |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    after = run.get("rss_after_failover_mib") or {}
    for name in sorted(set(run["rss_loaded_mib"]) | set(after)):
        v, a = run["rss_loaded_mib"].get(name, {}), after.get(name, {})
        lines.append(
            f"| {name} | {v.get('role', '-')} / {a.get('role', '-')} | {_f(v.get('rss'))} | {_f(v.get('peak'))} "
            f"| {_f(a.get('rss'))} | {_f(a.get('peak'))} |"
        )
    cost = run["cost"]
    kcm = cost.get("kcm_cpu_s_per_1000_transitions")
    lines += [
        "",
        f"Over {cost['transitions']} pod transitions (Ready, or deleted/not Ready) in the registration and churn "
        f"phases, the leader used {cost['leader_cpu_s']} CPU s ({cost['cpu_s_per_1000_transitions']} per 1,000; "
        f"a standby {cost['standby_cpu_s_per_1000_transitions']} per 1,000"
        + (f"; kube-controller-manager {kcm} per 1,000" if kcm is not None else "")
        + f") and sent {cost['leader_zk_ops']} ZooKeeper operations ({cost['zk_ops_per_transition']} per "
        "transition, fencing checks included).",
        "",
    ]
    names = list(next(iter(cost["phases"].values()))["replicas"])
    lines += [
        "| phase | transitions | seconds | " + " | ".join(names) + " |",
        "| --- | ---: | ---: |" + " ---: |" * len(names),
    ]
    for name, p in cost["phases"].items():
        cells = []
        for replica in names:
            v = p["replicas"].get(replica)
            if v is None:
                cells.append("-")
            elif v["role"] == "kube-controller-manager":
                cells.append(f"{v['cpu_s']} CPU s")
            else:
                cells.append(f"{v['cpu_s']} CPU s, {v['zk_ops']} ops ({v['role']})")
        lines.append(f"| {name} | {p['transitions']} | {p['seconds']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _own_view(phase: dict, h: dict | None) -> list[str]:
    """The leader's zkregistry_ready_to_registered_seconds over a phase: from its inventory seeing the
    pod serving to the create's reply. The rest of the end-to-end latency is the pod intake."""
    if not h:
        return []
    split = phase.get("intake_and_notification_mean_ms")
    return [
        "The leader's own histogram (`zkregistry_ready_to_registered_seconds`: from its inventory seeing the pod "
        f"serving to the create's reply, so without the pod intake): p50 <= {h['p50_le']} ms, p95 <= {h['p95_le']} "
        f"ms, p99 <= {h['p99_le']} ms (bucket bounds), mean {h.get('mean', '-')} ms, over {h['count']} creates."
        + (
            f" End to end the mean is {phase['ours'].get('mean')} ms: {split} ms of it (the difference of the means) "
            "is the intake (the pod's event reaching the inventory, against the bench's own watch) and the children "
            "watch's notification to the bench."
            if split is not None
            else ""
        ),
        "",
    ]


def _profiles_section(results: dict) -> list[str]:
    lines = []
    found: list[tuple[str, dict | None]] = []
    for pods in results["pods_run"]:
        run = results["runs"][str(pods)]
        found += [
            (f"N = {pods}: first pods coming up, leader", run.get("profiles", {}).get("prebuild_leader")),
            (f"N = {pods}: registration burst, leader", run.get("profiles", {}).get("burst_leader")),
            (f"N = {pods}: registration burst, a standby", run.get("profiles", {}).get("burst_standby")),
            (f"N = {pods}: graceful handover, successor", run["handover"].get("profile")),
            (f"N = {pods}: crash failover, successor", run["crash"].get("profile")),
        ]
    for layout, by_n in ((results.get("scaling") or {}).get("runs") or {}).items():
        for n, r in by_n.items():
            if r.get("profile"):
                found.append(
                    (f"scaling, {layout} N = {n}: {r['profile'].get('transitions')} transitions", r["profile"])
                )
    for title, p in found:
        if not p:
            continue
        lines += [
            f"## Profile, {title} ({p['samples']} samples of the GIL holder at {p.get('rate')} Hz "
            f"over {p.get('seconds')} s: Python ran {p.get('gil_busy_pct')} % of the time; flame graph "
            f"`{p['raw'].replace('.collapsed.txt', '.svg')}`, collapsed stacks `{p['raw']}`)",
            "",
            "| by thread | % | self time by package | % | self time by function | % |",
            "| --- | ---: | --- | ---: | --- | ---: |",
        ]
        rows = max(len(p["by_thread_pct"]), len(p["self_by_package_pct"]), len(p["self_by_function_pct"]))
        for i in range(min(rows, 12)):
            cells = []
            for key in ("by_thread_pct", "self_by_package_pct", "self_by_function_pct"):
                entries = p[key]
                cells += [f"`{entries[i][0]}`", str(entries[i][1])] if i < len(entries) else ["", ""]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Inclusive: " + "; ".join(f"`{n}` {v} %" for n, v in p["inclusive_by_function_pct"][:10]), ""]
    return lines


def _method() -> list[str]:
    return [
        "## How it is measured",
        "",
        "- One clock: every event is stamped with `time.time()` by a watcher process of its own, on the same "
        "machine as every server, so a znode's ctime (set by the ZooKeeper leader) is on that clock too.",
        "- A pod's start is the moment a Kubernetes watch on pods first shows it Ready (not terminating), "
        "or, for deregistration, first shows it terminating, not Ready or deleted: Ready's lastTransitionTime "
        "has a resolution of one second only.",
        "- zkregistry's end is the moment a client's children watch on the service path first shows one of the "
        "pod's znodes (`<uid>`, or `<uid>.1` after a make-before-break takeover), or, for deregistration, shows "
        "none of them; the znode's ctime is shown as well. A pod counts as gone to a client only when no name of "
        "it is listed. The EndpointSlice controller's end is the moment a watch on EndpointSlices sees the pod's "
        "endpoint ready (or removed, not ready or terminating). A Service per Deployment selects the same pods "
        "that zkregistry registers.",
        "- At N = 10,000 every Deployment is annotated from its creation: the first 9,000 pods come up (each "
        "measured), then the last 1,000 (the burst).",
        "- Cold resync: from the old leader's election znode being seen gone (the successor is elected at that "
        "moment) to the ctime of the last znode re-created by the successor's session, after SIGTERM to the "
        "leader. Crash failover: from the first removal seen after kill -9 (the session expiring) to the "
        "moment the watcher sees every registration back.",
        "- Cost: RSS and its peak (VmHWM) from /proc/<pid>/status; CPU from /proc/<pid>/stat (utime + stime) for "
        "each replica and for kube-controller-manager (its pid from the cluster handle); ZooKeeper operations "
        "from the leader's `zkregistry_zookeeper_operations_total`; transitions are the pods seen becoming "
        "Ready plus those seen going.",
        "- Scaling: `benchmarks/scaling.py`, before the control plane starts, against an ensemble of its own; "
        "`time.process_time` of a process that runs one replica's handler-to-writer path and nothing else.",
        "- The watchers run at niceness -5, above everything else (they are the instrument and use little "
        "CPU: the sooner they stamp, the truer the figure); even so, under load the watcher of pods sometimes "
        "stamps a pod Ready after zkregistry has already registered it, hence some negative values (see min; "
        "results.json counts them as `negative`). They bound the error of the start stamps.",
        "- All processes share two cores (and other engineers' test runs); latencies include that contention, "
        "for both zkregistry and the EndpointSlice controller. py-spy samples the profiled replica without "
        "stopping it (`--nonblocking`).",
        "",
    ]


# -- plots -------------------------------------------------------------------------------------


def _cdf(ax, values: list[float], label: str, **style) -> None:
    if not values:
        return
    ordered = sorted(values)
    ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=f"{label} (n={len(values)})", **style)


def _plots(out: Path, results: dict, plots: dict) -> list[str]:
    runs = plots.get("runs", {})
    counts = sorted(runs)
    images = []
    if not counts:
        return images

    fig, axes = plt.subplots(1, len(counts), figsize=(6 * len(counts), 4.5), squeeze=False)
    for ax, pods in zip(axes[0], counts, strict=True):
        r = runs[pods].get("register", {})
        _cdf(ax, r.get("ours", []), "zkregistry (znode seen)")
        _cdf(ax, r.get("ours_ctime", []), "zkregistry (znode ctime)", linestyle="--")
        _cdf(ax, r.get("endpointslice", []), "EndpointSlice")
        churn = runs[pods].get("register_churn", {})
        _cdf(ax, churn.get("ours", []), "zkregistry, during churn", linestyle=":")
        prebuild = runs[pods].get("prebuild", {})
        _cdf(ax, prebuild.get("ours", []), "zkregistry, first pods (all at once)", linestyle="-.")
        _cdf(ax, prebuild.get("endpointslice", []), "EndpointSlice, first pods (all at once)", linestyle="-.")
        ax.axvline(50, color="grey", linewidth=0.8)
        ax.axvline(250, color="grey", linewidth=0.8, linestyle="--")
        ax.set(xlabel="pod Ready -> registered (ms)", ylabel="fraction of pods", title=f"N = {pods}")
        ax.set_xscale("symlog", linthresh=1)  # a few are negative: the watcher of pods stamped late
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Registration latency (grey: the 50 ms and 250 ms goals)")
    fig.tight_layout()
    fig.savefig(out / "latency_register.png", dpi=110)
    plt.close(fig)
    images.append("latency_register.png")

    fig, axes = plt.subplots(1, len(counts), figsize=(6 * len(counts), 4.5), squeeze=False)
    for ax, pods in zip(axes[0], counts, strict=True):
        d = runs[pods].get("deregister", {})
        _cdf(ax, d.get("ours", []), "zkregistry (znode gone)")
        _cdf(ax, d.get("endpointslice", []), "EndpointSlice (endpoint not ready/removed)")
        ax.axvline(250, color="grey", linewidth=0.8, linestyle="--")
        ax.set(
            xscale="log",
            xlabel="pod terminating/not Ready -> deregistered (ms)",
            ylabel="fraction of pods",
            title=f"N = {pods}: scale down and rolling update",
        )
        ax.set_xscale("symlog", linthresh=1)  # a few are negative: the watcher of pods stamped late
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Deregistration latency under churn (grey: the 250 ms goal)")
    fig.tight_layout()
    fig.savefig(out / "latency_deregister.png", dpi=110)
    plt.close(fig)
    images.append("latency_deregister.png")

    fig, axes = plt.subplots(1, len(counts), figsize=(6 * len(counts), 4.5), squeeze=False)
    for ax, pods in zip(axes[0], counts, strict=True):
        b = runs[pods].get("burst", {})
        for key, label in (
            ("added", "pods created"),
            ("ready", "pods Ready"),
            ("endpoint", "endpoints ready"),
            ("znode", "znodes present"),
        ):
            times = b.get(key, [])
            ax.plot(times, range(1, len(times) + 1), label=label)
        ax.set(xlabel="seconds since the Deployments were created", ylabel="count", title=f"N = {pods}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Registration burst: how far each lags behind the pods becoming Ready")
    fig.tight_layout()
    fig.savefig(out / "burst_timeline.png", dpi=110)
    plt.close(fig)
    images.append("burst_timeline.png")

    fig, axes = plt.subplots(len(counts), 2, figsize=(12, 4 * len(counts)), squeeze=False)
    for row, pods in zip(axes, counts, strict=True):
        h = runs[pods].get("handover", {})
        taken = sorted(h.get("taken", []))
        row[0].plot(taken, range(1, len(taken) + 1), label="znodes owned by the successor")
        row[0].axvline(0, color="grey", linewidth=0.8, label="old leader's election znode gone")
        if h.get("sigterm") is not None:
            row[0].axvline(h["sigterm"], color="red", linewidth=0.8, label="SIGTERM")
        row[0].set(xlabel="seconds", ylabel="znodes", title=f"N = {pods}: graceful handover (no member missing)")
        row[0].legend(fontsize=8)
        row[0].grid(True, alpha=0.3)
        c = runs[pods].get("crash", {})
        timeline = c.get("timeline", [])
        if timeline:
            row[1].step([t for t, _ in timeline], [n for _, n in timeline], where="post", label="znodes present")
        row[1].axvline(0, color="red", linewidth=0.8, label="kill -9")
        if c.get("expiry") is not None:
            row[1].axvline(c["expiry"], color="grey", linewidth=0.8, label="session expiry seen")
        row[1].set(xlabel="seconds since kill -9", ylabel="znodes", title=f"N = {pods}: crash of the leader")
        row[1].legend(fontsize=8)
        row[1].grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "failover.png", dpi=110)
    plt.close(fig)
    images.append("failover.png")

    profiles = []
    for pods in results["pods_run"]:
        run = results["runs"][str(pods)]
        for title, p in (
            ("first pods, leader", run.get("profiles", {}).get("prebuild_leader")),
            ("burst, leader", run.get("profiles", {}).get("burst_leader")),
            ("burst, standby", run.get("profiles", {}).get("burst_standby")),
            ("handover, successor", run["handover"].get("profile")),
            ("crash, successor", run["crash"].get("profile")),
        ):
            if p:
                profiles.append((f"N = {pods}: {title}", p))
    if profiles:
        fig, axes = plt.subplots(len(profiles), 2, figsize=(13, 3.6 * len(profiles)), squeeze=False)
        for row, (title, p) in zip(axes, profiles, strict=True):
            for ax, key, what in (
                (row[0], "by_thread_pct", "by thread"),
                (row[1], "self_by_package_pct", "self time by package"),
            ):
                entries = p[key][:10][::-1]
                ax.barh([e[0][:40] for e in entries], [e[1] for e in entries])
                ax.set(xlabel="% of samples", title=f"{title}: {what}")
                ax.tick_params(axis="y", labelsize=8)
        fig.tight_layout()
        fig.savefig(out / "profiles.png", dpi=100)
        plt.close(fig)
        images.append("profiles.png")
    return images


def scaling_plot(out: Path, scaling: dict) -> str | None:
    """scaling.png: CPU and listings per transition, RSS and the time to register the first N,
    against N, per layout (N = 1,000 is one registry in both)."""
    rows = [r for r in scaling.get("table", []) if r.get("pods")]
    if not rows:
        return None
    smallest = min(r["pods"] for r in rows)
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.6))
    for layout, marker, color in (("even", "o", "tab:blue"), ("zipf", "s", "tab:orange")):
        mine = sorted((r for r in rows if r["layout"] == layout), key=lambda r: r["pods"])
        if layout == "zipf":
            mine = [r for r in rows if r["layout"] == "even" and r["pods"] == smallest] + mine

        def line(ax, key, scale=1.0, style="-", label="", rows_=mine, marker_=marker, color_=color):
            points = [(r["pods"], r[key] * scale) for r in rows_ if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker=marker_, linestyle=style, color=color_, label=label)

        line(axes[0], "cpu_us_per_transition", 1 / 1000, label=f"{layout}")
        line(axes[1], "listings_per_transition", label=f"{layout}")
        line(axes[2], "rss_registered_mib", label=f"{layout}: after registering N")
        line(axes[2], "rss_peak_mib", style=":", label=f"{layout}: peak")
        line(axes[3], "register_s", label=f"{layout}: N written")
        line(axes[3], "settled_s", style="--", label=f"{layout}: and the mirror settled")
        for r in mine:
            if r.get("note") and r.get("cpu_us_per_transition") is None:
                for ax in axes[:2]:
                    ax.axvline(r["pods"], color=color, linestyle="--", linewidth=0.8)
                    ax.annotate(
                        f"{layout}: not measured",
                        (r["pods"], 0.5),
                        xycoords=("data", "axes fraction"),
                        fontsize=8,
                        rotation=90,
                        ha="right",
                        color=color,
                    )
                if r.get("rss_peak_mib"):
                    axes[2].scatter(
                        [r["pods"]],
                        [r["rss_peak_mib"]],
                        marker="x",
                        color=color,
                        zorder=3,
                        label=f"{layout}: stopped at the RSS cap",
                    )
    axes[0].set(xscale="log", xlabel="pods (N)", ylabel="ms", title="CPU per pod transition (whole process)")
    axes[1].set(xscale="log", xlabel="pods (N)", ylabel="listings", title="The mirror's listings per transition")
    axes[2].set(xscale="log", yscale="log", xlabel="pods (N)", ylabel="MiB", title="RSS of the process")
    axes[3].set(xscale="log", yscale="log", xlabel="pods (N)", ylabel="seconds", title="Registering the first N")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        "One replica without a control plane, against a 3-server ensemble (even: paths of 1,000-2,000; "
        "zipf: the largest path grows with N)"
    )
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=100)
    plt.close(fig)
    return "scaling.png"


if __name__ == "__main__":  # re-render report.md from results.json (after editing analysis.md)
    import json
    import sys

    folder = Path(sys.argv[1])
    figures = json.loads((folder / "results.json").read_text())
    if "--recompute-goals" in sys.argv[2:]:  # the verdicts by this file's rules, written back
        figures["goals"] = goals(figures)
        (folder / "results.json").write_text(json.dumps(figures, indent=1, default=str) + "\n")
    write(folder, figures, None)

"""report.md and the PNG plots of one run, its figures beside DESIGN.md section 4's goals."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# (key, what, goal text, measured value, met?) from DESIGN.md section 4.
GOALS = [
    ("register_p50", "pod Ready -> znode present, p50", "<= 50 ms"),
    ("register_p99", "pod Ready -> znode present, p99", "<= 250 ms"),
    ("register_vs_endpointslice", "pod Ready -> znode present vs EndpointSlice", "no slower (p50 and p99)"),
    ("deregister_p99", "pod not Ready or deleted -> znode gone, p99", "<= 250 ms"),
    ("cold_resync", "cold resync by a new leader (all registrations)", "<= 1 s"),
    ("crash_failover", "crash failover: all back after the old session expires", "<= 1 s"),
    ("graceful_handover", "graceful leader handover: members that disappear", "0"),
    ("memory", "RSS per replica at 10,000 pods", "<= 150 MiB"),
]


def _met(value, limit, smaller=True) -> bool | None:
    if value is None:
        return None
    return value <= limit if smaller else value >= limit


def goals(results: dict) -> list[dict]:
    reg = results["register_latency_ms"]
    ours, eps = reg["ours"], reg["endpointslice"]
    dereg = results["deregister_latency_ms"]["ours"]
    rss = results["rss_mib"]
    rss_loaded = max(v for v in (rss["leader_loaded"], rss["standby_loaded"]) if v is not None)
    measured = {
        "register_p50": (f"{ours['p50']} ms", _met(ours["p50"], 50)),
        "register_p99": (f"{ours['p99']} ms", _met(ours["p99"], 250)),
        "register_vs_endpointslice": (
            f"p50 {ours['p50']} vs {eps['p50']} ms, p99 {ours['p99']} vs {eps['p99']} ms "
            f"(ratio {reg['ratio']['p50']}, {reg['ratio']['p99']})",
            None
            if ours["p50"] is None or eps["p50"] is None
            else ours["p50"] <= eps["p50"] and ours["p99"] <= eps["p99"],
        ),
        "deregister_p99": (f"{dereg['p99']} ms", _met(dereg["p99"], 250)),
        "cold_resync": (f"{results['cold_resync_s']} s", _met(results["cold_resync_s"], 1.0)),
        "crash_failover": (f"{results['crash_failover_gap_s']} s", _met(results["crash_failover_gap_s"], 1.0)),
        "graceful_handover": (f"{results['graceful_handover_removals']}", results["graceful_handover_removals"] == 0),
        "memory": (f"leader {rss['leader_loaded']} MiB, standby {rss['standby_loaded']} MiB", _met(rss_loaded, 150)),
    }
    return [
        {"goal": key, "what": what, "target": target, "measured": measured[key][0], "met": measured[key][1]}
        for key, what, target in GOALS
    ]


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "n/a"}[met]


def _row(name: str, s: dict) -> str:
    def f(v):
        return "-" if v is None else f"{v:g}"

    cells = [str(s.get("count", 0))] + [f(s.get(q)) for q in ("min", "p50", "p95", "p99", "max")]
    return f"| {name} | " + " | ".join(cells) + f" | {s.get('missing', 0)} |"


LATENCY_HEAD = (
    "| | pods | min ms | p50 ms | p95 ms | p99 ms | max ms | missing |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def write(out: Path, results: dict, plots: dict | None) -> None:
    """report.md (and the plots, given their data) in `out`. A hand-written `analysis.md` there,
    if any, is included as the section on what the profiles show."""
    order = ["latency_register.png", "latency_deregister.png", "burst_timeline.png", "failover.png", "profiles.png"]
    images = _plots(out, results, plots) if plots else [name for name in order if (out / name).exists()]
    analysis = out / "analysis.md"
    lines = _report(results, images, analysis.read_text().rstrip().splitlines() if analysis.exists() else [])
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _report(results: dict, images: list[str], analysis: list[str]) -> list[str]:
    m = results["machine"]
    n = results["pods"]
    lines = [
        f"# zkregistry benchmark, {results['date']}",
        "",
        f"`{results.get('command', 'python -m benchmarks.run')}` (`make bench` runs it through tools/env.sh): "
        f"{results['duration_s'] / 60:.1f} minutes on {m['cpus']} CPUs (load average at the start "
        f"{m['load_avg_at_start']}, shared with other work), Python {m['python']}, commit {m['commit']}. "
        "A local control plane (kwokctl, binary runtime), a 3-server ZooKeeper ensemble on loopback and "
        "three operator replicas (`--session-timeout 4`), all on this machine.",
        "",
        f"## Goals (DESIGN.md section 4), at N = {n} pods"
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
        lines.append(f"| {g['what']} | {g['target']} | {g['measured']} | {_verdict(g['met'])} |")
    c = results["zk_ceiling"]
    lines += [
        "",
        f"Cost at N = {n}: {results['cpu_s_per_1000_transitions']} CPU seconds of the leader per 1,000 pod "
        f"transitions, {results['zk_ops_per_transition']} ZooKeeper operations per transition; idle leader "
        f"{results['rss_mib']['leader_idle']} MiB RSS. The ZooKeeper ceiling: {c['best_creates_per_s']} "
        f"creates/s (10,000 EPHEMERAL creates in pipelined multis of 100 would take {c['seconds_for_10000_best']} s; "
        f"runs {c['runs']}).",
        "",
    ]
    lines += [*analysis, ""] if analysis else []
    for pods in results["pods_run"]:
        lines += _run_section(results["runs"][str(pods)])
    lines += ["## Plots", ""] + [f"![{name}]({name})" for name in images] + [""]
    lines += _profiles_section(results)
    lines += _method()
    return lines


def _run_section(run: dict) -> list[str]:
    reg, n = run["register"], run["pods"]
    burst = run.get("burst_pods", n)
    lines = [f"## N = {n}: {run['deployments']} Deployments, {run['registries']} ServiceRegistries", ""]
    bulk = run.get("bulk_registration")
    if bulk:
        lines += [
            f"The first {bulk['znodes']} pods came up before their Deployments opted in ({bulk['prebuild_s']} s); "
            f"once annotated, all {bulk['znodes']} were registered {bulk['seconds']} s later (the last znode's "
            f"ctime: {bulk['seconds_by_ctime']} s; the leader used {bulk['leader_cpu_s']} CPU s and "
            f"{bulk['leader_zk_ops']} ZooKeeper operations). Then the last {burst} pods became Ready, each "
            "measured, into registries that already held the others.",
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
        *_own_view(run),
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
        f"A watching client saw **{h['removals_seen']}** members disappear. The old leader exited "
        f"{h['old_leader_exit_s']} s after SIGTERM (`handover complete` logged: {h['handover_complete_logged']}).",
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
        "| replica | role | RSS MiB | peak RSS MiB |",
        "| --- | --- | ---: | ---: |",
    ]
    for name, v in run["rss_loaded_mib"].items():
        lines.append(f"| {name} | {v['role']} | {v.get('rss')} | {v.get('peak')} |")
    cost = run["cost"]
    lines += [
        "",
        f"Over {cost['transitions']} pod transitions (Ready, or deleted/not Ready) in the registration and churn "
        f"phases, the leader used {cost['leader_cpu_s']} CPU s ({cost['cpu_s_per_1000_transitions']} per 1,000; "
        f"a standby {cost['standby_cpu_s_per_1000_transitions']} per 1,000) and sent {cost['leader_zk_ops']} "
        f"ZooKeeper operations ({cost['zk_ops_per_transition']} per transition, fencing checks included).",
        "",
        "| phase | transitions | seconds | " + " | ".join(next(iter(cost["phases"].values()))["replicas"]) + " |",
        "| --- | ---: | ---: |" + " ---: |" * len(next(iter(cost["phases"].values()))["replicas"]),
    ]
    for name, p in cost["phases"].items():
        cells = [f"{v['cpu_s']} CPU s, {v['zk_ops']} ops ({v['role']})" for v in p["replicas"].values()]
        lines.append(f"| {name} | {p['transitions']} | {p['seconds']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _own_view(run: dict) -> list[str]:
    """The leader's zkregistry_ready_to_registered_seconds over the burst: from its inventory seeing the
    pod Ready (after kopf delivered the event) to the znode created; the rest of the latency is delivery."""
    h = run.get("cost", {}).get("phases", {}).get("register", {}).get("leader_ready_to_registered_ms")
    if not h:
        return []
    return [
        f"The leader's own histogram (`zkregistry_ready_to_registered_seconds`, from its inventory seeing the pod "
        f"Ready to the znode created, so without kopf's delivery): p50 <= {h['p50_le']} ms, p95 <= {h['p95_le']} ms, "
        f"p99 <= {h['p99_le']} ms ({h['count']} pods; bucket bounds).",
        "",
    ]


def _profiles_section(results: dict) -> list[str]:
    lines = []
    for pods in results["pods_run"]:
        run = results["runs"][str(pods)]
        found = [("registration burst, leader", run.get("profiles", {}).get("burst_leader"))]
        found += [("registration burst, a standby", run.get("profiles", {}).get("burst_standby"))]
        found += [("graceful handover, successor", run["handover"].get("profile"))]
        found += [("crash failover, successor", run["crash"].get("profile"))]
        for title, p in found:
            if not p:
                continue
            lines += [
                f"## Profile at N = {pods}: {title} ({p['samples']} samples of the GIL holder at {p.get('rate')} Hz "
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
        "- zkregistry's end is the moment a client's children watch on the service path sees the znode appear "
        "(or disappear); the znode's ctime is shown as well. The EndpointSlice controller's end is the moment "
        "a watch on EndpointSlices sees the pod's endpoint ready (or removed, not ready or terminating). A "
        "Service per Deployment selects the same pods that zkregistry registers.",
        "- Cold resync: from the old leader's election znode being seen gone (the successor is elected at that "
        "moment) to the ctime of the last znode re-created by the successor's session, after SIGTERM to the "
        "leader. Crash failover: from the first removal seen after kill -9 (the session expiring) to the "
        "moment the watcher sees every registration back.",
        "- Cost: RSS from /proc/<pid>/status; CPU from /proc/<pid>/stat (utime + stime); ZooKeeper operations "
        "from the leader's `zkregistry_zookeeper_operations_total`; transitions are the pods seen becoming "
        "Ready plus those seen going.",
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


if __name__ == "__main__":  # re-render report.md from results.json (after editing analysis.md)
    import json
    import sys

    folder = Path(sys.argv[1])
    write(folder, json.loads((folder / "results.json").read_text()), None)

"""report.md and timeline.png of one soak run, from its results.json and the sampled timeline."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from soak.nemesis import KINDS


def write(out: Path, results: dict, timeline: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    image = plot(out, results, timeline)
    (out / "report.md").write_text("\n".join(lines(results, image)) + "\n")


def _f(value) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def lines(r: dict, image: str | None) -> list[str]:
    ok = not r["violations"]
    verdict = "Every invariant held." if ok else f"{len(r['violations'])} invariant(s) broken."
    md = [
        f"# Soak run, seed {r['seed']}",
        "",
        f"Commit `{r['commit']}`, {r['duration_s'] / 60:.1f} minutes of faults under churn "
        f"({r['rounds']} rounds, {r['overlapping_rounds']} of them with overlapping faults), "
        f"{r['settings']['replicas']} replicas, session timeout {r['settings']['session_timeout_s']:g} s, "
        f"resync {r['settings']['resync_s']} s. Repeat with `tools/env.sh python -m soak.run --seed {r['seed']}`.",
        "",
        f"**{verdict}** "
        f"Convergence checks passed {r['checks']['passed']}, failed {r['checks']['failed']} "
        f"(bound: {r['bound_s']:g} s after each round heals).",
        "",
    ]
    if r.get("interrupted"):
        md += ["The run was stopped by a signal before its planned end.", ""]
    if image:
        md += [f"![timeline]({image})", ""]
    if not ok:
        md += ["## Broken invariants", ""]
        md += [f"- at +{v['at_s']:g} s, {v['invariant']}: {v['problem']}" for v in r["violations"]]
        md += [""]
    md += [
        "## Faults and convergence",
        "",
        "Time from the end of a round (every fault of it healed) until every invariant held at one moment; "
        "a round with several faults counts for each of its kinds.",
        "",
        "| kind | injected | converge p50 (s) | p99 (s) | max (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind in KINDS:
        c = r["converge_s"].get(kind, {})
        md.append(
            f"| {kind} | {r['faults'].get(kind, 0)} | {_f(c.get('p50'))} | {_f(c.get('p99'))} | {_f(c.get('max'))} |"
        )
    if r["fault_errors"]:
        md += ["", "Faults the nemesis could not inject or heal as meant:", ""]
        md += [f"- {f['kind']} on {f['target']}: {f['error']}" for f in r["fault_errors"]]
    md += [
        "",
        "## What clients missed",
        "",
        "Absences of the steady pods (Ready for the whole run) seen by each observer: a children watch, "
        "a data watch per child, Curator's ServiceCache. Each absence counts for every kind of the round "
        "in progress; `none` is outside every round. Graceful kinds (`term`, `rolling-restart`) and `none` "
        "must show nothing.",
        "",
        "| kind | observer | absences | total (s) | longest (s) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for kind in sorted(r["missing"]):
        for observer, f in sorted(r["missing"][kind].items()):
            md.append(f"| {kind} | {observer} | {f['intervals']} | {f['total_s']:g} | {f['longest_s']:g} |")
    if not r["missing"]:
        md.append("| (none) | | 0 | 0 | 0 |")
    md += [
        "",
        "Observers cannot see while their own connection is down (quorum loss, their server stopped): "
        "seconds blind per registry and observer: "
        + "; ".join(
            f"{reg}: " + ", ".join(f"{o} {s:g}" for o, s in obs.items()) for reg, obs in r["observer_blind_s"].items()
        )
        + ".",
        "",
        "## Replica processes",
        "",
        "Sampled every 5 s from /proc; slopes by least squares, per hour, leaving out each process's first minute. "
        "A restarted replica is a new process.",
        "",
        "| process | span (s) | RSS first -> last (MiB) | RSS slope | threads first -> last | slope "
        "| fds first -> last | slope |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, p in sorted(r["resources"].items(), key=lambda kv: -kv[1]["span_s"]):
        md.append(
            f"| {key} | {p['span_s']:g} | {p['first']['rss_mib']:g} -> {p['last']['rss_mib']:g} "
            f"| {_f(p['rss_mib_per_hour'])} | {p['first']['threads']} -> {p['last']['threads']} "
            f"| {_f(p['threads_per_hour'])} | {p['first']['fds']} -> {p['last']['fds']} | {_f(p['fds_per_hour'])} |"
        )
    md += [
        "",
        f"Churn actions: {r['churn']['actions']}; failed (API server away): {r['churn']['failed']}.",
        "",
        "Replicas that exited by themselves (restarted by the soak, as the kubelet would): "
        + (", ".join(f"{e['name']} at +{e['at_s']:g} s (exit {e['code']})" for e in r["replica_exits"]) or "none")
        + ".",
        "",
        "Tracebacks in the replicas' logs: "
        + (", ".join(f"{name} {t['count']}" for name, t in r["tracebacks"].items()) or "none")
        + ".",
    ]
    for name, t in r["tracebacks"].items():
        md += ["", f"First traceback of {name}:", "", "```", t["first"], "```"]
    return md


def plot(out: Path, results: dict, timeline: list[dict]) -> str | None:
    if not timeline:
        return None
    t0 = results["t0"]
    fig, (ax_f, ax_m, ax_l) = plt.subplots(
        3, 1, figsize=(14, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
    )
    kinds = list(KINDS)
    colors = plt.get_cmap("tab20")
    for r in results["round_log"]:
        for f in r["faults"]:
            end = f["end"] or f["start"]
            y = kinds.index(f["kind"])
            ax_f.broken_barh([(f["start"] - t0, max(end - f["start"], 0.5))], (y - 0.4, 0.8), color=colors(y))
        if r["converged"]:
            ax_f.axvspan(r["healed"] - t0, r["converged"] - t0, color="0.85", zorder=0)
        else:
            ax_f.axvspan(r["healed"] - t0, r["healed"] - t0 + results["bound_s"], color="mistyrose", zorder=0)
    for v in results["violations"]:
        ax_f.axvline(v["t"] - t0, color="red", linewidth=1)
    ax_f.set_yticks(range(len(kinds)), kinds)
    ax_f.set_title(
        f"soak seed {results['seed']}: faults (grey: until converged; pink: not converged within the bound; "
        "red: broken invariant)"
    )
    xs = [row["t"] - t0 for row in timeline]
    for i, registry in enumerate(results["settings"]["registries"]):
        color = f"C{i}"
        ax_m.plot(
            xs, [row["members"].get(registry) for row in timeline], color=color, linewidth=1, label=f"{registry} znodes"
        )
        ax_m.plot(
            xs, [(row["desired"] or {}).get(registry) for row in timeline], color=color, linestyle=":", linewidth=1.5,
            label=f"{registry} Ready pods",
        )
    ax_m.set_ylabel("members")
    ax_m.legend(ncol=6, fontsize=7, loc="upper left")
    names = sorted({row["leader"] for row in timeline if row["leader"]})
    ax_l.plot(xs, [names.index(row["leader"]) if row["leader"] else -1 for row in timeline], drawstyle="steps-post")
    ax_l.set_yticks([-1, *range(len(names))], ["none", *names])
    ax_l.set_ylabel("leader")
    ax_l.set_xlabel("seconds since the first fault")
    fig.tight_layout()
    fig.savefig(out / "timeline.png", dpi=90)
    plt.close(fig)
    return "timeline.png"

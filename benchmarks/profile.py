"""py-spy profiles of an operator replica: record while a phase runs, then summarise.

    recording = Recording.start(pid, folder / "burst")   # py-spy record --gil --threads --format raw
    ...                                                  # the phase
    summary = recording.stop()                          # Ctrl-C: py-spy writes what it has

Only the thread that holds the GIL is sampled (`--gil`): the profile shows where the interpreter's
time goes, the one resource that a Python replica cannot have more of, and the number of samples
against the wall time says how busy it was. The raw file holds collapsed stacks (`thread (tid):
name;frame;frame count`, as flamegraph.pl and speedscope read them); `summarise` turns it into
shares by thread, by package and by function, and `flamegraph` into a plain SVG.
"""

from __future__ import annotations

import html
import re
import shutil
import signal
import subprocess
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r" \(([^():]*):\d+\)$")


def available() -> bool:
    return shutil.which("py-spy") is not None


@dataclass
class Recording:
    pid: int
    raw: Path
    process: subprocess.Popen
    rate: int
    started: float

    @classmethod
    def start(cls, pid: int, stem: Path, rate: int = 50, limit_s: int = 900) -> Recording:
        raw = stem.with_suffix(".collapsed.txt")
        log = open(stem.with_suffix(".py-spy.log"), "ab")  # noqa: SIM115 (the child keeps it)
        process = subprocess.Popen(
            [
                "py-spy",
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--output",
                str(raw),
                "--threads",
                "--gil",
                "--nonblocking",
                "--rate",
                str(rate),
                "--duration",
                str(limit_s),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return cls(pid, raw, process, rate, time.monotonic())

    def stop(self) -> dict | None:
        seconds = time.monotonic() - self.started
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        log = self.raw.with_name(self.raw.name.replace(".collapsed.txt", ".py-spy.log"))
        if not self.raw.exists() or not self.raw.stat().st_size:
            return None  # py-spy's log says why
        log.unlink(missing_ok=True)
        stacks = read(self.raw)
        flamegraph(stacks, self.raw.with_name(self.raw.name.replace(".collapsed.txt", ".svg")))
        out = summarise(stacks) | {"raw": self.raw.name, "seconds": round(seconds, 1), "rate": self.rate}
        # --gil samples only while a thread holds the GIL: the share of wall time spent running Python.
        out["gil_busy_pct"] = round(min(100.0, 100 * out["samples"] / max(1.0, seconds * self.rate)), 1)
        return out


def read(raw: Path) -> Counter:
    stacks: Counter = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def _frames(stack: str) -> tuple[str, list[str]]:
    """(thread name, frames outermost first, each without its line number)."""
    parts = stack.split(";")
    thread = parts[0].split(": ", 1)[-1] if parts[0].startswith(("thread", "process")) else "?"
    return thread, [_LINE.sub(r" (\1)", p) for p in parts[1:]]


def package(frame: str) -> str:
    """`zkregistry/plan.py` for our modules, the top-level package (kopf, kazoo, aiohttp) for
    others, `stdlib:<module>` for the standard library's own files."""
    match = re.search(r"\(([^()]*)\)$", frame)
    path = match.group(1) if match else frame
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "?"
    if parts[0] == "zkregistry":
        return "/".join(parts[:2]) if len(parts) > 1 else parts[0]
    if len(parts) == 1:
        return f"stdlib:{parts[0].removesuffix('.py')}"
    return parts[0]


def summarise(stacks: Counter, top: int = 15) -> dict:
    total = sum(stacks.values())
    by_thread: Counter = Counter()
    self_package: Counter = Counter()
    self_function: Counter = Counter()
    inclusive: Counter = Counter()
    for stack, count in stacks.items():
        thread, frames = _frames(stack)
        by_thread[thread] += count
        if frames:
            self_package[package(frames[-1])] += count
            self_function[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def shares(counter: Counter) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "by_thread_pct": shares(by_thread),
        "self_by_package_pct": shares(self_package),
        "self_by_function_pct": shares(self_function),
        "inclusive_by_function_pct": shares(inclusive),
    }


def flamegraph(stacks: Counter, out: Path, width: int = 1600, row: int = 16) -> None:
    """A plain flame graph (an SVG with a tooltip on every frame), threads at the bottom."""
    tree: dict = {}
    for stack, count in stacks.items():
        thread, frames = _frames(stack)
        node = tree
        for frame in [f"thread {thread}", *frames]:
            entry = node.setdefault(frame, [0, {}])
            entry[0] += count
            node = entry[1]
    total = sum(e[0] for e in tree.values()) or 1
    depth_max = max((len(_frames(s)[1]) for s in stacks), default=0) + 1
    height = (depth_max + 1) * row
    rects: list[str] = []

    def draw(node: dict, x: float, depth: int) -> None:
        y = height - (depth + 1) * row
        for name, (count, children) in sorted(node.items()):
            w = count / total * width
            if w >= 0.5:
                hue = 10 + zlib.crc32(package(name).encode()) % 50
                label, short = html.escape(name), html.escape(name[: int(w / 6.7)])
                rects.append(
                    f"<g><title>{label} ({100 * count / total:.1f}%)</title>"
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="hsl({hue},85%,60%)"/>'
                    f'<text x="{x + 2:.1f}" y="{y + row - 4}" font-size="11">{short}</text></g>'
                )
                draw(children, x, depth + 1)
            x += w

    draw(tree, 0.0, 0)
    out.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace">\n'
        + "\n".join(rects)
        + "\n</svg>\n"
    )

"""Apache Curator's own service discovery as a process that tests drive (tests/interop/curator/).

    program = CuratorProgram.build()          # mvn -q -B package, once per version of the sources
    with program.run("watch", zk_hosts, "/services", "orders") as watch:
        line = watch.wait_for(lambda l: l["event"] == "initial")
        watch.wait_for(lambda l: l.get("ids") == ["a", "b"], timeout=30)

The build happens in a copy of the sources under ~/.cache/zkregistry/curator-<hash> (or
$ZKREGISTRY_CACHE), never in the work tree, and is reused while the sources are unchanged; a file
lock keeps concurrent test sessions from building it twice. Every stdout line of the program is
a JSON object; `lines` keeps them in order with the local time at which each arrived.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SOURCES = Path(__file__).resolve().parent / "curator"
MAIN = "io.zkregistry.interop.CuratorInterop"


def _cache_root() -> Path:
    return Path(os.environ.get("ZKREGISTRY_CACHE") or Path.home() / ".cache" / "zkregistry")


def _digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in SOURCES.rglob("*") if p.is_file() and "target" not in p.parts):
        digest.update(str(path.relative_to(SOURCES)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass
class CuratorProgram:
    classpath: str

    @classmethod
    def build(cls) -> CuratorProgram:
        """Builds the program unless a build of the same sources is cached; raises RuntimeError
        with Maven's output if the build fails."""
        home = _cache_root() / f"curator-{_digest()}"
        done = home / "classpath"
        home.parent.mkdir(parents=True, exist_ok=True)
        with open(home.parent / f"{home.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.exists():
                shutil.rmtree(home, ignore_errors=True)
                shutil.copytree(SOURCES, home, ignore=shutil.ignore_patterns("target"))
                result = subprocess.run(
                    ["nice", "mvn", "-q", "-B", "package"], cwd=home, capture_output=True, text=True, timeout=900,
                )
                if result.returncode != 0:
                    raise RuntimeError(f"mvn package failed in {home}:\n{(result.stdout + result.stderr)[-4000:]}")
                done.write_text(f"{home}/target/classes:{home}/target/lib/*")
        return cls(done.read_text().strip())

    def command(self, mode: str, *args: str) -> list[str]:
        return [
            "java", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp", self.classpath, MAIN, mode, *args,
        ]

    def run(self, mode: str, *args: str) -> CuratorProcess:
        """Starts the program; stop it (or use it as a context manager) to end it."""
        process = subprocess.Popen(
            self.command(mode, *args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        return CuratorProcess(process)

    def decode(self, documents: list[bytes]) -> list[dict]:
        """What Curator's JsonInstanceSerializer(Map.class) makes of each document (one per line)."""
        text = b"".join(d + b"\n" for d in documents)
        result = subprocess.run(self.command("decode"), input=text, capture_output=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"decode failed: {result.stderr.decode(errors='replace')[-2000:]}")
        return [json.loads(line) for line in result.stdout.decode().splitlines()]


@dataclass
class Line:
    data: dict
    received: float  # time.time() when the line arrived

    def __getitem__(self, key: str):
        return self.data[key]

    def get(self, key: str, default=None):
        return self.data.get(key, default)


@dataclass
class CuratorProcess:
    process: subprocess.Popen
    lines: list[Line] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: queue.Queue[Line | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = Line(json.loads(raw), time.time())
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self._stderr.append(raw.decode(errors="replace"))

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def wait_for(self, condition: Callable[[Line], object], timeout: float = 60) -> Line:
        """The first line, among those already read and those to come, that satisfies `condition`;
        TimeoutError (with the program's stderr) after `timeout` seconds."""
        for line in list(self.lines):
            if condition(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            # Lines already checked above come through the queue again: they fail again.
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(
                    f"no matching line from Curator within {timeout:g} s; last lines: "
                    f"{[x.data for x in self.lines[-3:]]}; stderr: {self.stderr[-2000:]}"
                ) from None
            if line is None:
                self._queue.put(None)  # for the next caller
                self.process.wait(timeout=10)
                raise RuntimeError(f"Curator program exited ({self.process.returncode}): {self.stderr[-2000:]}")
            if condition(line):
                return line

    def stop(self, timeout: float = 20) -> int:
        """Closes stdin (the program's signal to finish) and waits; kills it if it hangs."""
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> CuratorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

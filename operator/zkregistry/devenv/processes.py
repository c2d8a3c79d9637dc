"""Small helpers for the local environment's processes: free ports, waiting, stopping."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that were free a moment ago, on every interface.

    They are drawn from below the kernel's ephemeral range: outgoing connections take their local
    ports from that range, so none of them can take one of these between now and the bind of the
    server it is meant for (which made a replica fail with "Address already in use")."""
    top = _ephemeral_low()
    chosen: list[int] = []
    for port in random.sample(range(10000, top), top - 10000):
        with socket.socket() as s:
            try:
                s.bind(("", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise OSError(f"fewer than {count} free TCP ports below {top}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def wait_for(
    condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05, retry_errors: bool = True
):
    """Polls `condition` until it returns something truthy, which is returned; raises
    TimeoutError naming `what` when `timeout` seconds pass first. An exception from `condition`
    counts as "not yet" (a server that is still starting refuses us) unless `retry_errors` is False."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception as error:
            if not retry_errors:
                raise
            value, last = None, error
        else:
            last = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last})" if last else "")
            )
        time.sleep(interval)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM (and SIGCONT, in case it is paused), then SIGKILL after `timeout`; waits until gone."""
    for sig in (signal.SIGTERM, signal.SIGCONT):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
    try:
        wait_for(lambda: not alive(pid), timeout, f"process {pid} to exit")
    except TimeoutError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_for(lambda: not alive(pid), 10, f"process {pid} to die")
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def spawn(argv: list[str], log: os.PathLike, **kwargs) -> subprocess.Popen:
    """Starts `argv` in its own session (a signal to the test run does not reach it), with
    stdout and stderr appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs
        )

"""Settings of `zkregistry run`: each a flag and an environment variable of the same name.

`--zk-hosts` is also `ZKREGISTRY_ZK_HOSTS`; a flag wins over the variable. A bad value stops the
operator at start-up with a one-line message naming the setting.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A setting has a value the operator cannot run with."""


@dataclass(frozen=True)
class Settings:
    zk_hosts: str = "127.0.0.1:2181"
    zk_chroot: str = ""
    session_timeout: float = 10.0
    owner_id: str = ""  # empty: derived at start from the cluster (kube.default_owner_id)
    root: str = ""  # default /zkregistry/<owner id>
    identity: str = field(default_factory=lambda: os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}")
    zk_digest: str = ""  # user:password
    zk_reader: str = "world:anyone"  # who may read the registrations
    zk_tls: bool = False
    zk_tls_insecure: bool = False  # TLS without verifying the server's certificate and name
    zk_ca_file: str = ""
    zk_cert_file: str = ""
    zk_key_file: str = ""
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    log_format: str = "text"
    log_level: str = "INFO"
    resync_seconds: float = 30.0
    handover_timeout: float = 30.0
    http_port: int = 8080  # metrics and health; 0 turns it off
    path_prefixes: tuple[str, ...] = ("/services",)  # where every namespace may register
    claim_release_seconds: float = 600.0  # a claim nobody of its namespace wants is released after this

    @property
    def root_path(self) -> str:
        """The operator's own znodes: the election and the claims."""
        return self.root or f"/zkregistry/{self.owner_id}"

    @property
    def election_path(self) -> str:
        return f"{self.root_path}/election"

    @property
    def connection_string(self) -> str:
        return self.zk_hosts + self.zk_chroot


# (flag, type, help); the environment variable is ZKREGISTRY_ + the flag in upper snake case.
OPTIONS: list[tuple[str, type, str]] = [
    ("zk-hosts", str, "ZooKeeper servers, host:port[,host:port...]"),
    ("zk-chroot", str, "a chroot under which every path lives, e.g. /prod"),
    (
        "session-timeout",
        float,
        "ZooKeeper session timeout in seconds: how long a dead leader's "
        "registrations stay before they vanish and a successor takes over (default 10)",
    ),
    (
        "owner-id",
        str,
        "this installation's owner id, written into every registration (default: "
        "<namespace>-<kube-system namespace uid>, unique to the cluster and the installation)",
    ),
    ("root", str, "ZooKeeper path of the operator's own znodes (default /zkregistry/<owner id>)"),
    ("identity", str, "this replica's name in the election (default: POD_NAME or host-pid)"),
    ("zk-digest", str, "digest credentials user:password; znodes are then writable by them only"),
    ("zk-reader", str, "ACL identity that may read registrations, scheme:id (default world:anyone)"),
    ("zk-tls", bool, "connect to ZooKeeper's secure client port with TLS, verifying its certificate and host name"),
    ("zk-tls-insecure", bool, "with --zk-tls: do not verify the server's certificate nor its host name"),
    ("zk-ca-file", str, "CA bundle that signed the ZooKeeper servers' certificates"),
    ("zk-cert-file", str, "client certificate for TLS"),
    ("zk-key-file", str, "client key for TLS"),
    ("namespaces", str, "comma-separated namespaces to watch (default: all)"),
    ("log-format", str, "text or json"),
    ("log-level", str, "DEBUG, INFO, WARNING or ERROR"),
    ("resync-seconds", float, "period of the full resync that repairs out-of-band changes"),
    ("handover-timeout", float, "on SIGTERM, how long a leader waits for its successor"),
    ("http-port", int, "port of /metrics, /healthz and /readyz (0: off)"),
    (
        "path-prefixes",
        str,
        "comma-separated ZooKeeper paths under which every namespace may register without a "
        "RegistryPolicy (default /services; empty: none)",
    ),
    (
        "claim-release-seconds",
        float,
        "how long a path stays claimed by a namespace that no longer has a registry for it (default 600)",
    ),
]


def env_name(flag: str) -> str:
    return "ZKREGISTRY_" + flag.upper().replace("-", "_")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, kind, help_ in OPTIONS:
        if kind is bool:
            parser.add_argument(f"--{flag}", action="store_true", default=None, help=f"{help_} [{env_name(flag)}]")
        else:
            parser.add_argument(f"--{flag}", default=None, help=f"{help_} [{env_name(flag)}]")


def from_arguments(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Settings from parsed flags, then the environment, then the defaults; validated."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for flag, kind, _ in OPTIONS:
        raw = getattr(args, flag.replace("-", "_"), None)
        if raw is None:
            raw = environ.get(env_name(flag))
        if raw is None or (raw == "" and flag != "path-prefixes"):
            continue
        name = flag.replace("-", "_")
        try:
            if kind is bool:
                values[name] = raw if isinstance(raw, bool) else _boolean(str(raw))
            elif name in ("namespaces", "path_prefixes"):
                values[name] = tuple(n.strip() for n in str(raw).split(",") if n.strip())
            else:
                values[name] = kind(raw)
        except ValueError:
            raise ConfigError(f"--{flag} ({env_name(flag)}): {raw!r} is not a valid {kind.__name__}") from None
    settings = Settings(**values)  # type: ignore[arg-type]
    validate(settings)
    return settings


def _boolean(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def validate(s: Settings) -> None:
    hosts = [h.strip() for h in s.zk_hosts.split(",")]
    if not hosts or not all(_HOST.match(h) and int(h.rsplit(":", 1)[1]) <= 65535 for h in hosts):
        raise ConfigError(f"--zk-hosts: {s.zk_hosts!r} is not a list of host:port")
    for flag, path in (("--zk-chroot", s.zk_chroot), ("--root", s.root)):
        if path and (not path.startswith("/") or path.endswith("/") or "//" in path):
            raise ConfigError(f"{flag}: {path!r} must be an absolute ZooKeeper path without a trailing /")
    # float() accepts inf and nan: inf overflows a thread's wait, and nan passes no comparison
    # (so no range check below would catch it) while making a timed loop spin.
    for flag, kind, _ in OPTIONS:
        value = getattr(s, flag.replace("-", "_"))
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"--{flag}: {value} is not a finite number of seconds")
    for flag, value, low, high, unit in (
        ("--session-timeout", s.session_timeout, 1, 120, " seconds"),
        ("--resync-seconds", s.resync_seconds, 1, 86400, " seconds"),
        ("--handover-timeout", s.handover_timeout, 0, 3600, " seconds"),
        ("--http-port", s.http_port, 0, 65535, ""),
        ("--claim-release-seconds", s.claim_release_seconds, 0, 31_536_000, " seconds"),
    ):
        if not low <= value <= high:
            raise ConfigError(f"{flag}: {value:g} is outside {low}..{high}{unit}")
    if s.owner_id and not _NAME.match(s.owner_id):
        raise ConfigError(f"--owner-id: {s.owner_id!r} must be 1-63 letters, digits, '.', '_' or '-'")
    for prefix in s.path_prefixes:
        if prefix != "/" and (not prefix.startswith("/") or prefix.endswith("/") or "//" in prefix):
            raise ConfigError(f"--path-prefixes: {prefix!r} must be an absolute ZooKeeper path without a trailing /")
    if s.zk_tls_insecure and not s.zk_tls:
        raise ConfigError("--zk-tls-insecure: only with --zk-tls")
    if s.zk_digest and ":" not in s.zk_digest:
        raise ConfigError("--zk-digest: expected user:password")
    if ":" not in s.zk_reader:
        raise ConfigError(f"--zk-reader: {s.zk_reader!r} is not scheme:id")
    if s.log_format not in ("text", "json"):
        raise ConfigError(f"--log-format: {s.log_format!r} is neither text nor json")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"--log-level: {s.log_level!r} is not DEBUG, INFO, WARNING or ERROR")
    for flag, path in (
        ("--zk-ca-file", s.zk_ca_file),
        ("--zk-cert-file", s.zk_cert_file),
        ("--zk-key-file", s.zk_key_file),
    ):
        if path and not os.path.isfile(path):
            raise ConfigError(f"{flag}: {path} does not exist")

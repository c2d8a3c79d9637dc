"""The `zkregistry` command: `run` (the operator), `discover` (what ZooKeeper holds for a service)
and `dev` (the local environment)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Sequence

from zkregistry import __version__, config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zkregistry", description=__doc__)
    parser.add_argument("--version", action="version", version=f"zkregistry {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator (one replica)")
    config.add_arguments(run)

    discover = commands.add_parser(
        "discover",
        help="list (or watch) the instances of a service in ZooKeeper",
        description="List the instances registered for SERVICE at <base path>/SERVICE, in any format "
        "(Curator, serverset), by zkregistry or by anyone else. Exit status: 0 found, 1 service "
        "not found or ZooKeeper unreachable, 2 usage.",
    )
    discover.error = _one_line_error(discover)  # type: ignore[method-assign]
    discover.add_argument("service", metavar="SERVICE")
    discover.add_argument(
        "--zk-hosts",
        default=None,
        help="ZooKeeper servers, host:port[,host:port...][/chroot] [ZKREGISTRY_ZK_HOSTS, default 127.0.0.1:2181]",
    )
    discover.add_argument("--base-path", default="/services", help="parent znode of services (default /services)")
    discover.add_argument("--watch", action="store_true", help="keep printing the instances after each change")
    discover.add_argument(
        "--output",
        "-o",
        choices=["table", "json"],
        default="table",
        help="table (default) or json (one JSON document per line)",
    )
    discover.add_argument("--zk-digest", default=None, help="digest credentials user:password [ZKREGISTRY_ZK_DIGEST]")
    discover.add_argument(
        "--zk-tls",
        action="store_true",
        default=None,
        help="TLS, verifying the server's certificate and host name [ZKREGISTRY_ZK_TLS]",
    )
    discover.add_argument(
        "--zk-tls-insecure",
        action="store_true",
        default=None,
        help="with --zk-tls: do not verify the server [ZKREGISTRY_ZK_TLS_INSECURE]",
    )
    discover.add_argument(
        "--zk-ca-file", default=None, help="CA bundle (default: the system's) [ZKREGISTRY_ZK_CA_FILE]"
    )
    discover.add_argument("--zk-cert-file", default=None, help="client certificate [ZKREGISTRY_ZK_CERT_FILE]")
    discover.add_argument("--zk-key-file", default=None, help="client key [ZKREGISTRY_ZK_KEY_FILE]")
    discover.add_argument(
        "--connect-timeout", type=float, default=5.0, help="seconds to wait for ZooKeeper before giving up (default 5)"
    )

    dev = commands.add_parser("dev", help="a local Kubernetes cluster and ZooKeeper ensemble")
    dev.add_argument("action", choices=["up", "down", "status"])
    dev.add_argument("--dir", help="folder of the environment (default ~/.cache/zkregistry/dev)")

    args = parser.parse_args(argv)
    if args.command == "run":
        try:
            settings = config.from_arguments(args)
        except config.ConfigError as error:
            print(f"zkregistry: {error}", file=sys.stderr)
            return 2
        from zkregistry import app

        return app.run(settings)
    if args.command == "discover":
        return _discover(args)
    return _dev(args)


def _dev(args: argparse.Namespace) -> int:
    from zkregistry.devenv.environment import Environment

    environment = Environment(args.dir)
    if args.action == "up":
        took = environment.up()
        print(f"ZooKeeper ensemble up in {took['ensemble_s']:.1f} s, cluster in {took['cluster_s']:.1f} s")
    elif args.action == "down":
        environment.down()
        print("stopped")
        return 0
    print(environment.describe())
    return 0


def _one_line_error(parser: argparse.ArgumentParser):
    """An `error` for `parser` that prints one line, not argparse's usage block, and exits 2."""

    def error(message: str):
        print(f"{parser.prog}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)

    return error


def _discover(args: argparse.Namespace) -> int:
    """`zkregistry discover`: errors are one line on stderr; 1 for a missing service or an
    unreachable ZooKeeper, 2 for bad arguments (argparse's own convention)."""
    from zkregistry.client import DiscoveryError, ServiceDiscovery, validate_base_path, validate_service_name

    # kazoo logs each failed connection attempt; the one-line error below says it all.
    logging.getLogger("kazoo").addHandler(logging.NullHandler())
    logging.getLogger("kazoo").propagate = False
    hosts = args.zk_hosts or os.environ.get("ZKREGISTRY_ZK_HOSTS") or "127.0.0.1:2181"
    try:
        validate_service_name(args.service)
        validate_base_path(args.base_path)
        security = _security(args)
        try:
            discovery = ServiceDiscovery(hosts, args.base_path, connect_timeout=args.connect_timeout, **security)
        except ValueError as error:
            raise ValueError(f"--zk-hosts {hosts!r}: {error}") from None
    except ValueError as error:
        print(f"zkregistry discover: {error}", file=sys.stderr)
        return 2
    try:
        with discovery:
            if not args.watch:
                _print_instances(args, discovery.path_for(args.service), discovery.query_for_instances(args.service))
                return 0
            with discovery.service_cache(args.service) as cache:
                for instances in cache.updates():
                    _print_instances(args, cache.path, instances, watching=True)
        return 0
    except DiscoveryError as error:
        print(f"zkregistry: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _security(args: argparse.Namespace) -> dict:
    """The KazooClient options of `discover`'s TLS and auth flags, each falling back to the
    operator's environment variable of the same name. Raises ValueError on a bad combination."""

    def value(name: str) -> str:
        given = getattr(args, name)
        if given is None:
            given = os.environ.get(config.env_name(name.replace("_", "-")), "")
        return given if isinstance(given, str) else ("true" if given else "")

    def flag(name: str) -> bool:
        return value(name).lower() in ("1", "true", "yes", "on")

    from zkregistry import zk

    digest, tls, insecure = value("zk_digest"), flag("zk_tls"), flag("zk_tls_insecure")
    if digest and ":" not in digest:
        raise ValueError("--zk-digest: expected user:password")
    if insecure and not tls:
        raise ValueError("--zk-tls-insecure: only with --zk-tls")
    files = {name: value(name) for name in ("zk_ca_file", "zk_cert_file", "zk_key_file")}
    for name, path in files.items():
        if path and not os.path.isfile(path):
            raise ValueError(f"--{name.replace('_', '-')}: {path} does not exist")
    return zk.security_options(digest, tls, insecure, files["zk_ca_file"], files["zk_cert_file"], files["zk_key_file"])


def _print_instances(args: argparse.Namespace, path: str, instances: Sequence, watching: bool = False) -> None:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if args.output == "json":
        document = {"service": args.service, "path": path, "instances": [i.to_dict() for i in instances]}
        if watching:
            document = {"time": now, **document}
        print(json.dumps(document, separators=(",", ":")), flush=True)
        return
    if watching:
        print(f"# {now} {path}: {len(instances)} instance{'s' if len(instances) != 1 else ''}")
    print(format_table(instances), flush=True)


def format_table(instances: Sequence) -> str:
    """The instances as an aligned table for people, one row each (a header alone if none)."""
    header = ("ID", "ADDRESS", "PORT", "ENABLED", "FORMAT", "POD", "ENDPOINTS", "METADATA")
    rows = [header]
    for i in instances:
        pod = f"{i.namespace}/{i.pod}" if i.pod else "-"
        endpoints = ",".join(f"{n}={p}" for n, (_, p) in sorted(i.endpoints.items())) or "-"
        metadata = ",".join(f"{k}={v}" for k, v in sorted(i.metadata.items())) or "-"
        port = i.port if i.port is not None else (f"ssl:{i.ssl_port}" if i.ssl_port is not None else "-")
        rows.append((i.id, i.address or "-", str(port), str(i.enabled).lower(), i.format, pod, endpoints, metadata))
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows)

"""The `zkregistry` command: `run` (the operator) and `dev` (the local environment)."""

from __future__ import annotations

import argparse
import sys

from zkregistry import __version__, config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zkregistry", description=__doc__)
    parser.add_argument("--version", action="version", version=f"zkregistry {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator (one replica)")
    config.add_arguments(run)

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

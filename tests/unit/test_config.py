"""Settings: flags and environment variables of the same names, clear errors for bad values."""

from __future__ import annotations

import argparse

import pytest

from zkregistry import config


def parse(argv: list[str], environ: dict[str, str] | None = None) -> config.Settings:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.from_arguments(parser.parse_args(argv), environ or {})


def test_flags_environment_and_defaults():
    s = parse(["--zk-hosts", "a:1,b:2"], {"ZKREGISTRY_SESSION_TIMEOUT": "4", "POD_NAMESPACE": "prod"})
    assert s.zk_hosts == "a:1,b:2" and s.session_timeout == 4.0
    assert s.owner_id == "prod" and s.election_path == "/zkregistry/prod/election"
    assert parse([], {"ZKREGISTRY_ZK_HOSTS": "z:2181"}).zk_hosts == "z:2181"
    assert parse(["--zk-hosts", "a:1"], {"ZKREGISTRY_ZK_HOSTS": "z:2181"}).zk_hosts == "a:1"
    assert parse([], {"ZKREGISTRY_NAMESPACES": "a, b"}).namespaces == ("a", "b")
    assert parse([], {"ZKREGISTRY_ZK_TLS": "true"}).zk_tls is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--zk-hosts", "nohost"], "--zk-hosts"),
        (["--session-timeout", "soon"], "--session-timeout"),
        (["--session-timeout", "0.1"], "1..120"),
        (["--zk-chroot", "relative"], "--zk-chroot"),
        (["--owner-id", "a/b"], "--owner-id"),
        (["--zk-digest", "nopassword"], "user:password"),
        (["--log-format", "xml"], "--log-format"),
        (["--zk-ca-file", "/does/not/exist"], "--zk-ca-file"),
    ],
)
def test_bad_values_name_the_setting(argv, message):
    with pytest.raises(config.ConfigError, match=message):
        parse(argv)


def test_cli_exits_2_with_one_line(capsys):
    from zkregistry.cli import main

    assert main(["run", "--zk-hosts", "nohost"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--zk-hosts" in err

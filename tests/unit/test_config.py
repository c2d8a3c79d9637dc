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
    assert s.owner_id == ""  # derived from the cluster at start (kube.default_owner_id)
    s = parse(["--owner-id", "prod"], {"POD_NAMESPACE": "other"})
    assert s.owner_id == "prod" and s.election_path == "/zkregistry/prod/election"
    assert parse([]).path_prefixes == ("/services",)
    assert parse([], {"ZKREGISTRY_PATH_PREFIXES": ""}).path_prefixes == ()
    assert parse(["--path-prefixes", "/a, /b/c"]).path_prefixes == ("/a", "/b/c")
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


@pytest.mark.parametrize("flag", ["--session-timeout", "--resync-seconds", "--handover-timeout"])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "NaN"])
def test_float_settings_must_be_finite(flag, value):
    # float() accepts these; inf overflows Condition.wait and nan makes every comparison false.
    with pytest.raises(config.ConfigError, match=f"^{flag}: .*not a finite number"):
        parse([f"{flag}={value}"])
    env = {config.env_name(flag.removeprefix("--")): value}
    with pytest.raises(config.ConfigError, match=f"^{flag}: "):
        parse([], env)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resync-seconds", "0.5"], "--resync-seconds: 0.5 is outside 1..86400"),
        (["--resync-seconds", "86401"], "--resync-seconds: 86401 is outside 1..86400"),
        (["--handover-timeout=-1"], "--handover-timeout: -1 is outside 0..3600"),
        (["--handover-timeout", "3601"], "--handover-timeout: 3601 is outside 0..3600"),
        (["--http-port", "65536"], "--http-port: 65536 is outside 0..65535"),
    ],
)
def test_ranges_are_bounded(argv, message):
    with pytest.raises(config.ConfigError, match=f"^{message}"):
        parse(argv)


def test_range_ends_are_accepted():
    s = parse(["--resync-seconds", "1", "--handover-timeout", "0", "--session-timeout", "120"])
    assert (s.resync_seconds, s.handover_timeout, s.session_timeout) == (1.0, 0.0, 120.0)
    s = parse(["--resync-seconds", "86400", "--handover-timeout", "3600"])
    assert (s.resync_seconds, s.handover_timeout) == (86400.0, 3600.0)


def test_cli_exits_2_with_one_line(capsys):
    from zkregistry.cli import main

    assert main(["run", "--zk-hosts", "nohost"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--zk-hosts" in err

"""The runtime spec that the image's containers run with (devenv/container.py): it must say what
deploy/'s pod template says, since the e2e tests of the image rely on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from zkregistry.devenv.container import SERVICE_ACCOUNT_DIR, ImageConfig, Mount, resolve_user, runtime_spec, shells

CONFIG = ImageConfig.from_oci({
    "User": "65532:65532",
    "Entrypoint": ["zkregistry", "run"],
    "Env": ["PATH=/opt/zkregistry/bin:/usr/bin", "PYTHONUNBUFFERED=1"],
    "ExposedPorts": {"8080/tcp": {}},
})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nzkregistry:x:65532:65533::/nonexistent:/usr/sbin/nologin\n"
    )
    (tmp_path / "etc/group").write_text("root:x:0:\nzkregistry:x:65533:\nother:x:700:\n")
    (tmp_path / "etc/shells").write_text("# /etc/shells\n/bin/sh\n/usr/bin/sh\n/bin/bash\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/sh").touch()
    (tmp_path / "bin/bash").touch()
    return tmp_path


def test_the_process_is_the_entrypoint_with_the_args_as_the_images_user(root):
    spec = runtime_spec(root, CONFIG, args=["--zk-hosts", "zk:2181"], env={"POD_NAME": "a", "PYTHONUNBUFFERED": "0"})
    process = spec["process"]
    assert process["args"] == ["zkregistry", "run", "--zk-hosts", "zk:2181"]
    assert process["user"]["uid"] == 65532 and process["user"]["gid"] == 65532
    assert process["env"] == ["PATH=/opt/zkregistry/bin:/usr/bin", "PYTHONUNBUFFERED=0", "POD_NAME=a"]
    assert process["cwd"] == "/"


def test_command_replaces_the_entrypoint_and_cmd():
    config = ImageConfig(entrypoint=("zkregistry", "run"), cmd=("--help",))
    assert runtime_spec(Path("/"), config)["process"]["args"] == ["zkregistry", "run", "--help"]
    assert runtime_spec(Path("/"), config, command=["zkregistry"], args=["--version"])["process"]["args"] == [
        "zkregistry", "--version"]
    assert runtime_spec(Path("/"), config, command=["python3"])["process"]["args"] == ["python3"]


def test_what_deploy_asks_for(root):
    spec = runtime_spec(root, CONFIG, mounts=[Mount(SERVICE_ACCOUNT_DIR, "/somewhere")], masked=shells(root),
                        memory_limit=256 * 2**20)
    assert spec["root"] == {"path": str(root), "readonly": True}
    assert spec["process"]["noNewPrivileges"] is True
    assert all(v == [] for v in spec["process"]["capabilities"].values())
    namespaces = {n["type"] for n in spec["linux"]["namespaces"]}
    assert "network" not in namespaces and "pid" in namespaces  # the host's network; PID 1 is ours
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert mounts["/tmp"]["type"] == "tmpfs" and "size=16m" in mounts["/tmp"]["options"]
    assert mounts[SERVICE_ACCOUNT_DIR]["source"] == "/somewhere" and "ro" in mounts[SERVICE_ACCOUNT_DIR]["options"]
    assert {"/bin/sh", "/bin/bash"} <= set(spec["linux"]["maskedPaths"])
    assert spec["linux"]["resources"]["memory"]["limit"] == 256 * 2**20


@pytest.mark.parametrize(
    ("user", "expected"),
    [("", (0, 0)), ("65532", (65532, 65533)), ("65532:700", (65532, 700)), ("zkregistry", (65532, 65533)),
     ("zkregistry:other", (65532, 700)), ("1234", (1234, 1234))],
)
def test_users_resolve_as_a_runtime_resolves_them(root, user, expected):
    assert resolve_user(user, root) == expected


def test_an_unknown_user_name_is_an_error(root):
    with pytest.raises(ValueError, match="nobody"):
        resolve_user("nobody", root)


def test_shells_are_those_listed_that_exist(root):
    assert shells(root) == ["/bin/sh", "/bin/bash"]

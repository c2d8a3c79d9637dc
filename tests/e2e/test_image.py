"""The operator's image, built from the Dockerfile with buildah (tools/image.sh, the same as `make
image BASE=local`) and run with runc: the archive is what kind and docker load by name, the image
keeps what it promises (its user 65532, no shell needed at run time, a read-only root file
system, the package's version), and it holds nothing of the build. tests/e2e/test_image_replicas.py
runs the operator itself from it.

A build that fails fails the tests here with the end of buildah's log; tools/image.sh keeps the
whole log beside the cached image. The build is cached by its inputs: only a change to the
Dockerfile, the pins or operator/ builds again.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from tools import oci_archive

import zkregistry
from zkregistry.devenv.container import SERVICE_ACCOUNT_DIR, Container, Mount, runtime_spec, shells

TOP = Path(__file__).resolve().parents[2]


def run_once(image, root: Path, tmp_path: Path, args: list[str], command: list[str] = (), **spec) -> tuple[int, str]:
    """Runs one container of the image to its end, as the replicas run (read-only root, the
    image's user, its shells hidden unless `masked` says otherwise); (exit status, output)."""
    spec.setdefault("masked", shells(root))
    name = f"once-{tmp_path.name[-20:]}-{len(list(tmp_path.glob('bundle-*')))}"
    container = Container(name, tmp_path / f"bundle-{name}", tmp_path / "runc",
                          runtime_spec(root, image.config, args=args, command=command, **spec))
    log = tmp_path / f"{name}.log"
    process = container.start(log)
    try:
        status = process.wait(60)
    finally:
        container.remove()
    return status, log.read_text(errors="replace")


def test_the_archive_names_the_image_for_kind_and_docker(operator_image):
    archive, image = operator_image
    layout = oci_archive.read(archive)
    version = zkregistry.__version__
    # containerd's import (kind load image-archive) names the image by this annotation; the OCI
    # one holds the tag alone, as the image spec says.
    annotations = layout.descriptor["annotations"]
    assert annotations[oci_archive.CONTAINERD_NAME] == f"docker.io/library/zkregistry:{version}"
    assert annotations[oci_archive.OCI_REF_NAME] == version
    # docker load (before Docker 25) reads manifest.json: the same config and layers.
    assert layout.docker_manifest == oci_archive.docker_manifest(layout, annotations[oci_archive.CONTAINERD_NAME])
    assert layout.docker_manifest[0]["RepoTags"] == [f"zkregistry:{version}"]
    # What deploy/ and the chart run is exactly that name: a loaded archive needs no retagging.
    deployment = yaml.safe_load((TOP / "deploy" / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"zkregistry:{version}"
    # Every blob is there, whole: what buildah loaded (the image the other tests run) is the archive.
    assert oci_archive.verify(archive) == []
    assert image.id == layout.manifest["config"]["digest"].removeprefix("sha256:")


def test_the_image_config_runs_zkregistry_as_65532(operator_image):
    _, image = operator_image
    config = image.config
    assert config.user == "65532:65532"
    assert config.entrypoint == ("zkregistry", "run") and config.cmd == ()
    env = dict(config.env)
    assert env["PATH"].startswith("/opt/zkregistry/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert config.exposed_ports == ("8080/tcp",)


def test_the_image_holds_nothing_of_the_build(image_root):
    root = image_root
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    assert passwd["zkregistry"][2:4] == ["65532", "65532"] and passwd["zkregistry"][6] == "/usr/sbin/nologin"
    venv = root / "opt/zkregistry"
    assert not (venv / "bin/pip").exists() and not list(venv.glob("lib/python3*/site-packages/setuptools"))
    assert not (root / "src").exists(), "the build stage's source tree reached the image"
    # tools/image.sh lends the build's RUN steps the host's CA bundle in place of the base's own
    # file: no mount point of the build is left behind.
    assert not (root / "etc/pip.conf").exists() and not (root / "run/zkregistry-build").exists()
    assert (root / "etc/ssl/certs/ca-certificates.crt").stat().st_size > 0
    # The entry point is exec'd by the kernel through its shebang, the venv's Python: no shell.
    # (pip writes a /bin/sh trampoline instead when the interpreter's path is too long.)
    assert (venv / "bin/zkregistry").read_text().splitlines()[0] == "#!/opt/zkregistry/bin/python"


def test_zkregistry_version_is_the_packages(operator_image, image_root, tmp_path):
    _, image = operator_image
    status, output = run_once(image, image_root, tmp_path, ["--version"], command=["zkregistry"])
    assert status == 0, output
    assert output.strip() == f"zkregistry {zkregistry.__version__}"


def test_the_containers_keep_the_promises(operator_image, image_root, tmp_path):
    """What the replicas' containers enforce, seen from inside one (and so what the operator ran
    under in test_image_replicas): uid and gid 65532, no capability, no_new_privs, a read-only
    root with a writable /tmp, the ServiceAccount's files where in-cluster configuration reads
    them, and every shell of the image unusable."""
    _, image = operator_image
    secrets = tmp_path / "sa"
    secrets.mkdir(mode=0o755)
    (secrets / "token").write_text("a-token")
    (secrets / "token").chmod(0o644)
    masked = shells(image_root)
    assert "/bin/sh" in masked, masked
    probe = """
import json, os, subprocess
out = {"uid": (os.getuid(), os.geteuid()), "gid": (os.getgid(), os.getegid())}
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
out["caps"] = status["CapEff"].strip(); out["nnp"] = status["NoNewPrivs"].strip()
for path in ("/opt/zkregistry/x", "/etc/x", "/tmp/x"):
    try:
        open(path, "w").close(); out[path] = "written"
    except OSError as error:
        out[path] = error.strerror
out["token"] = open("/var/run/secrets/kubernetes.io/serviceaccount/token").read()
for shell in ("/bin/sh", "/bin/bash"):
    try:
        subprocess.run([shell, "-c", "true"]); out[shell] = "ran"
    except OSError as error:
        out[shell] = error.strerror
print(json.dumps(out))
"""
    status, output = run_once(
        image, image_root, tmp_path, ["-c", probe], command=["python3"],
        mounts=[Mount(SERVICE_ACCOUNT_DIR, str(secrets))], masked=masked,
    )
    assert status == 0, output
    seen = json.loads(output.strip().splitlines()[-1])
    assert seen["uid"] == [65532, 65532] and seen["gid"] == [65532, 65532]
    assert seen["caps"] == "0000000000000000" and seen["nnp"] == "1"
    assert seen["/opt/zkregistry/x"] == "Read-only file system" and seen["/etc/x"] == "Read-only file system"
    assert seen["/tmp/x"] == "written"
    assert seen["token"] == "a-token"
    assert seen["/bin/sh"] == "Permission denied" and seen["/bin/bash"] == "Permission denied"

"""tools/oci_archive.py on a small archive in buildah's layout: the names it adds are those that
containerd's import and docker load read, and nothing else changes."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from tools import oci_archive


def blob(files: dict[str, bytes], data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    files[oci_archive.blob_path(digest)] = data
    return digest


def write(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    layer = b"a layer"
    config = json.dumps({"config": {"User": "65532:65532"}, "rootfs": {"type": "layers"}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(files, config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob(files, layer),
                    "size": len(layer)}],
    }).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(files, manifest),
        "size": len(manifest), "annotations": {oci_archive.OCI_REF_NAME: "docker.io/library/zkregistry:0.1.0"}}]}
    files["index.json"] = json.dumps(index).encode()
    path = tmp_path / "buildah.tar"
    write(path, files)
    return path


def test_named_adds_the_names_every_loader_reads(source, tmp_path):
    out = tmp_path / "named.tar"
    oci_archive.named(source, out, "docker.io/library/zkregistry:0.1.0")
    layout = oci_archive.read(out)
    assert layout.descriptor["annotations"] == {
        oci_archive.CONTAINERD_NAME: "docker.io/library/zkregistry:0.1.0",
        oci_archive.OCI_REF_NAME: "0.1.0",
    }
    (entry,) = layout.docker_manifest
    assert entry["RepoTags"] == ["zkregistry:0.1.0"]
    assert entry["Config"] == oci_archive.blob_path(layout.manifest["config"]["digest"])
    assert entry["Layers"] == [oci_archive.blob_path(layout.manifest["layers"][0]["digest"])]
    assert layout.blobs == oci_archive.read(source).blobs  # the same blobs, not copied twice
    assert oci_archive.verify(out) == []
    assert oci_archive.unpacked_size(out) == len(b"a layer")


def test_verify_finds_a_blob_that_does_not_match_its_name(source, tmp_path):
    with tarfile.open(source) as archive:
        files = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
    layer = next(name for name, data in files.items() if data == b"a layer")
    files[layer] = b"another layer"
    broken = tmp_path / "broken.tar"
    write(broken, files)
    problems = oci_archive.verify(broken)
    assert any("does not hash to its name" in p for p in problems) and any("has 13 bytes" in p for p in problems)


@pytest.mark.parametrize(
    ("name", "short"),
    [("docker.io/library/zkregistry:0.1.0", "zkregistry:0.1.0"), ("docker.io/me/zkr:1", "me/zkr:1"),
     ("registry.example/zkregistry:2", "registry.example/zkregistry:2")],
)
def test_familiar_names_are_dockers(name, short):
    assert oci_archive.familiar(name) == short


def test_a_name_needs_a_tag():
    with pytest.raises(ValueError):
        oci_archive.split_name("docker.io/library/zkregistry")

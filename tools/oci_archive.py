"""OCI image archives (an OCI image layout in a tar file) that every common loader names alike.

buildah writes the image's name into index.json as `org.opencontainers.image.ref.name` only.
containerd's import (what `kind load image-archive` runs) ignores that annotation unless it is
given a base name, and imports the image without a name; `docker load` before Docker 25 reads
only a `manifest.json` in the layout of `docker save`. `named` therefore writes what `docker
save` itself writes since Docker 25: the OCI layout with `io.containerd.image.name` (the full
name) and `org.opencontainers.image.ref.name` (the tag) on the manifest, plus a `manifest.json`
whose RepoTags and paths point at the same blobs. Nothing is copied twice.

    python3 tools/oci_archive.py name SOURCE.tar DEST.tar docker.io/library/zkregistry:0.1.0
    python3 tools/oci_archive.py size ARCHIVE.tar         # the unpacked size of the layers

Standard library only: it runs before any virtual environment exists (tools/image.sh).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"
DEFAULT_REGISTRY = "docker.io"


def split_name(name: str) -> tuple[str, str]:
    """(repository, tag) of a full name "registry/path:tag"; the tag is required."""
    repository, colon, tag = name.rpartition(":")
    if not colon or "/" in tag or not repository:
        raise ValueError(f"{name!r} is not a full image name with a tag")
    return repository, tag


def familiar(name: str) -> str:
    """The short form Docker shows and writes into RepoTags: docker.io/library/x:1 is x:1."""
    for prefix in (f"{DEFAULT_REGISTRY}/library/", f"{DEFAULT_REGISTRY}/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def blob_path(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


@dataclass
class Layout:
    """The parsed JSON documents of an archive, and the blobs it holds (path -> size)."""

    index: dict
    manifest: dict
    config: dict
    docker_manifest: list | None
    blobs: dict[str, int]

    @property
    def descriptor(self) -> dict:
        """The index's one image manifest descriptor."""
        (descriptor,) = self.index["manifests"]
        return descriptor


def read(path: Path) -> Layout:
    """Reads an archive with exactly one image; raises ValueError if it is not one."""
    with tarfile.open(path) as archive:
        members = {m.name.removeprefix("./"): m for m in archive.getmembers() if m.isfile()}

        def document(name: str) -> object:
            member = members.get(name)
            if member is None:
                raise ValueError(f"{path}: no {name}")
            return json.load(archive.extractfile(member))

        index = document("index.json")
        if len(index.get("manifests", ())) != 1:
            raise ValueError(f"{path}: index.json must describe exactly one image")
        manifest = document(blob_path(index["manifests"][0]["digest"]))
        config = document(blob_path(manifest["config"]["digest"]))
        docker = document("manifest.json") if "manifest.json" in members else None
        blobs = {name: m.size for name, m in members.items() if name.startswith("blobs/")}
    return Layout(index, manifest, config, docker, blobs)


def verify(path: Path) -> list[str]:
    """What is wrong with the archive's blobs: each must hash to its name, and every blob the
    manifest names must be there with its size. An empty list means sound."""
    problems = []
    layout = read(path)
    wanted = [layout.descriptor, layout.manifest["config"], *layout.manifest["layers"]]
    for descriptor in wanted:
        size = layout.blobs.get(blob_path(descriptor["digest"]))
        if size is None:
            problems.append(f"{descriptor['digest']} is missing")
        elif size != descriptor["size"]:
            problems.append(f"{descriptor['digest']} has {size} bytes, not {descriptor['size']}")
    with tarfile.open(path) as archive:
        for member in archive:
            name = member.name.removeprefix("./")
            if member.isfile() and name.startswith("blobs/sha256/"):
                digest = hashlib.sha256()
                stream = archive.extractfile(member)
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
                if digest.hexdigest() != name.rsplit("/", 1)[1]:
                    problems.append(f"{name} does not hash to its name")
    return problems


def docker_manifest(layout: Layout, name: str) -> list[dict]:
    """`docker save`'s manifest.json for the image: its config and layers, by blob path."""
    return [
        {
            "Config": blob_path(layout.manifest["config"]["digest"]),
            "RepoTags": [familiar(name)],
            "Layers": [blob_path(layer["digest"]) for layer in layout.manifest["layers"]],
        }
    ]


def named(source: Path, destination: Path, name: str) -> None:
    """Copies the archive `source` to `destination`, naming its one image `name` for every loader."""
    _, tag = split_name(name)
    layout = read(source)
    index = json.loads(json.dumps(layout.index))
    annotations = index["manifests"][0].setdefault("annotations", {})
    annotations[CONTAINERD_NAME] = name
    annotations[OCI_REF_NAME] = tag
    replaced = {"index.json": index, "manifest.json": docker_manifest(layout, name)}
    with tarfile.open(source) as src, tarfile.open(destination, "w") as dst:
        for member in src:
            if member.name.removeprefix("./") in replaced:
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for member_name, document in replaced.items():
            data = json.dumps(document, separators=(",", ":")).encode()
            info = tarfile.TarInfo(member_name)
            info.size, info.mode = len(data), 0o644
            dst.addfile(info, io.BytesIO(data))


def unpacked_size(path: Path) -> int:
    """Bytes of the image's layers once unpacked (what `docker images` shows, roughly)."""
    layout = read(path)
    total = 0
    with tarfile.open(path) as archive:
        for layer in layout.manifest["layers"]:
            stream = archive.extractfile(blob_path(layer["digest"]))
            if layer["mediaType"].endswith("+gzip"):
                stream = gzip.GzipFile(fileobj=stream)
            while chunk := stream.read(1 << 20):
                total += len(chunk)
    return total


def human(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


def main(argv: list[str]) -> int:
    if argv[:1] == ["name"] and len(argv) == 4:
        named(Path(argv[1]), Path(argv[2]), argv[3])
    elif argv[:1] == ["size"] and len(argv) == 2:
        print(human(unpacked_size(Path(argv[1]))))
    else:
        print("usage: oci_archive.py name SOURCE DEST NAME | size ARCHIVE", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

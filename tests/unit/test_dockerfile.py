"""The Dockerfile, without building it: hadolint lints it, and its shape is what the design asks
for. tests/e2e/test_image.py builds it with buildah and runs the image."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from dockerfile import DOCKERFILE, instructions, stages

TOP = Path(__file__).resolve().parents[2]


def test_hadolint_finds_nothing():
    result = subprocess.run(
        ["hadolint", "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True, text=True,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_hadolint_would_find_a_problem():
    # The check above means something only if hadolint really lints: an untagged base image and
    # an unpinned pip install are two of its rules (DL3006, DL3013).
    bad = "FROM python\nRUN pip install kazoo\n"
    result = subprocess.run(["hadolint", "--format", "json", "-"], input=bad, capture_output=True, text=True)
    assert {finding["code"] for finding in json.loads(result.stdout)} >= {"DL3006", "DL3013"}
    assert result.returncode != 0


def test_dockerfile_shape():
    """Multi-stage on one base, a non-root user, and `zkregistry run` as the entry point. The base
    is an ARG whose default is a public Python 3.11 slim image pinned by digest (what users build);
    the tests pass a base made from Debian's packages instead (tools/image.sh --base local)."""
    text = DOCKERFILE.read_text()
    keyword, arguments = instructions(text)[0]
    assert keyword == "ARG" and arguments.startswith("BASE=")
    assert re.fullmatch(r"docker\.io/library/python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", arguments[5:])
    by_stage = stages(text)
    assert list(by_stage) == ["build", "1"]
    assert all(s[0] == ("FROM", arguments) for s, arguments in zip(
        by_stage.values(), ["${BASE} AS build", "${BASE}"], strict=True))
    final = dict(by_stage["1"])
    assert final["USER"] == "65532:65532"
    assert json.loads(final["ENTRYPOINT"]) == ["zkregistry", "run"]
    # Only the built environment crosses into the final stage: no source, no pip cache.
    copies = [arguments for keyword, arguments in by_stage["1"] if keyword == "COPY"]
    assert copies == ["--from=build /opt/zkregistry /opt/zkregistry"]


def test_dockerignore_lets_every_copied_path_in():
    # .dockerignore is an allow-list ("*" then "!path"); a COPY of a path it leaves out fails the
    # build with "not found".
    allowed = {line[1:].strip().rstrip("/") for line in (TOP / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    for keyword, arguments in stages(DOCKERFILE.read_text())["build"]:
        if keyword == "COPY":
            *sources, _ = arguments.split()
            assert {s.rstrip("/") for s in sources} <= allowed, f"COPY {arguments}: not in .dockerignore's allow-list"

"""The image's install steps, replayed: the image cannot be built here (no container engine), so
the Dockerfile's build stage runs in a fresh virtual environment, which must then run
`zkregistry run --help` through the image's ENTRYPOINT.

The replay reads the Dockerfile rather than repeating its commands, so that a change to the
Dockerfile is what gets tested. It maps the image's paths into a temporary folder and lets pip
use its cache (the image's `--no-cache-dir` only keeps the cache out of the layer). It installs
from PyPI, so it takes half a minute, which is why it is not in the unit tier.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dockerfile import DOCKERFILE, environment, stages

TOP = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_build_stage_steps_give_a_working_zkregistry(tmp_path: Path):
    by_stage = stages(DOCKERFILE.read_text())
    # The image's absolute paths, mapped into tmp_path (WORKDIR adds its own).
    paths: dict[str, Path] = {"/opt/zkregistry": tmp_path / "opt_zkregistry"}

    def mapped(text: str) -> str:
        for image_path, here in sorted(paths.items(), key=lambda item: -len(item[0])):
            text = text.replace(image_path, str(here))
        return text

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    # `python` is the image's Python; here, the interpreter running the tests (the same 3.11).
    bin_dir = tmp_path / "python-bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    workdir = tmp_path

    for keyword, arguments in by_stage["build"][1:]:
        if keyword == "ENV":
            env.update(environment(arguments))
        elif keyword == "WORKDIR":
            paths[arguments] = workdir = tmp_path / arguments.strip("/").replace("/", "_")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, destination = arguments.split()
            target = Path(mapped(destination)) if destination.startswith("/") else workdir / destination
            for source in sources:
                origin = TOP / source
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
        elif keyword == "RUN":
            command = mapped(arguments).replace("--no-cache-dir", "")
            result = subprocess.run(["sh", "-c", command], cwd=workdir, env=env, capture_output=True, text=True)
            assert result.returncode == 0, f"RUN {arguments}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        else:
            pytest.fail(f"the replay does not know {keyword}; teach it")

    venv = paths["/opt/zkregistry"]
    # No installer is left behind for the final stage.
    assert not (venv / "bin" / "pip").exists()
    assert not list((venv / "lib").glob("python3*/site-packages/setuptools"))

    # The final stage: its ENV and ENTRYPOINT, run against the copied environment.
    final = by_stage["1"]
    run_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    for keyword, arguments in final:
        if keyword == "ENV":
            run_env.update({k: mapped(v.replace("$PATH", run_env["PATH"])) for k, v in environment(arguments).items()})
    entrypoint = json.loads(dict(final)["ENTRYPOINT"])
    result = subprocess.run(
        [shutil.which(entrypoint[0], path=run_env["PATH"]), *entrypoint[1:], "--help"],
        env=run_env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "--zk-hosts" in result.stdout and "ZKREGISTRY_ZK_HOSTS" in result.stdout
    assert shutil.which(entrypoint[0], path=run_env["PATH"]) == str(venv / "bin" / "zkregistry")

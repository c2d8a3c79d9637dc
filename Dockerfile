# The zkregistry operator image: `zkregistry run`, configured by ZKREGISTRY_* variables.
#
# Two stages: the first installs the pinned dependencies (requirements.txt) and then zkregistry
# itself into a virtual environment; the second copies only that environment onto a clean base,
# so no pip, setuptools, build cache or source tree reaches the image.
#
# BASE is any Debian-like image with Python 3.11 as `python`, groupadd and useradd. The default is
# the public slim image, pinned by digest so that a build is repeatable; `make image BASE=local`
# passes one made from Debian's packages alone (tools/image.sh), which is what the tests build.
# tests/unit/test_dockerfile.py lints this file; tests/e2e/test_image.py builds and runs it.

ARG BASE=docker.io/library/python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/zkregistry
# Dependencies first, in their own layer: it is rebuilt only when a pin changes.
COPY requirements.txt ./
RUN /opt/zkregistry/bin/pip install --no-cache-dir -r requirements.txt
COPY pyproject.toml ./
COPY operator/ ./operator/
# --no-deps: exactly the pins above; `pip check` fails the build if they do not satisfy the
# package. Then pip and setuptools leave the environment: the operator needs neither.
RUN /opt/zkregistry/bin/pip install --no-cache-dir --no-deps . \
 && /opt/zkregistry/bin/pip check \
 && /opt/zkregistry/bin/pip uninstall --yes pip setuptools

FROM ${BASE}
# A named user for the numeric uid of the manifests (runAsUser 65532, the usual "nonroot"), so
# that tools that look the user up find one; it has no home and no shell.
RUN groupadd --gid 65532 zkregistry \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin zkregistry
COPY --from=build /opt/zkregistry /opt/zkregistry
# The root filesystem is read-only in the pod: write no bytecode, buffer no logs.
ENV PATH=/opt/zkregistry/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
# /metrics, /healthz and /readyz (--http-port).
EXPOSE 8080
ENTRYPOINT ["zkregistry", "run"]

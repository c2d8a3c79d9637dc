# The two commands of the README are `make demo` and `make test`. Each installs what it needs
# (tools/env.sh) into caches outside the work tree, so a second run starts at once.
ENV := tools/env.sh
PYTEST := $(ENV) python -m pytest

.PHONY: test lint unit zk e2e demo demo-down bench tools image

test: lint unit zk e2e

lint:
	$(ENV) ruff check .

unit:
	$(PYTEST) tests/unit -q

zk:
	$(PYTEST) tests/zk -q

e2e:
	$(PYTEST) tests/e2e -q

demo:
	$(ENV) python -m zkregistry.devenv.demo

demo-down:
	$(ENV) python -m zkregistry.devenv.demo down

bench:
	$(ENV) python -m benchmarks.run

tools:
	$(ENV) true

# The operator image, as an OCI archive for `kind load image-archive` or `docker load`. BASE= uses
# the Dockerfile's public base; BASE=local a base made from Debian's packages (no registry needed).
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' operator/zkregistry/__init__.py)
BASE ?=
image:
	tools/image.sh --base "$(BASE)" --output build/zkregistry-$(VERSION).oci.tar

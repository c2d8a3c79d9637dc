# The two commands of the README are `make demo` and `make test`. Each installs what it needs
# (tools/env.sh) into caches outside the work tree, so a second run starts at once.
ENV := tools/env.sh
PYTEST := $(ENV) python -m pytest

.PHONY: test lint unit zk e2e demo demo-down bench soak tools image

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

# Random faults under churn with invariants checked throughout; results in soak/results/<date>/.
# SOAK_ARGS="--seed 7 --minutes 5" repeats a run or shortens it.
SOAK_ARGS ?=
soak:
	$(ENV) python -m soak.run --minutes 30 $(SOAK_ARGS)

tools:
	$(ENV) true

# The operator image, as an OCI archive for `kind load image-archive` or `docker load`. BASE= uses
# the Dockerfile's public base; BASE=local a base made from Debian's packages (no registry needed).
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' operator/zkregistry/__init__.py)
BASE ?=
image:
	tools/image.sh --base "$(BASE)" --output build/zkregistry-$(VERSION).oci.tar

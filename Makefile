# The two commands of the README are `make demo` and `make test`. Each installs what it needs
# (tools/env.sh) into caches outside the work tree, so a second run starts at once.
ENV := tools/env.sh
PYTEST := $(ENV) python -m pytest

.PHONY: test lint unit zk e2e demo demo-down bench tools

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

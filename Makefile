# perfgate: `make demo` sets everything up and gates the demo benchmark; `make test` runs the whole suite.
CARGO ?= cargo
PERFGATE := target/release/perfgate

.PHONY: all setup build fixtures demo test lint bench clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --locked

fixtures: setup
	@bash fixtures/build.sh

demo: build fixtures
	@echo "== perfgate record: the talk's example (work1 spins 1e8 times, work2 2e8) =="
	$(PERFGATE) record -o /tmp/perfgate-demo.data -- ./fixtures/bin/work
	@echo
	@echo "== perfgate check: gate the demo benchmark against its committed baseline =="
	$(PERFGATE) check --baseline baselines/gatebench.toml --markdown /tmp/perfgate-demo.md --junit /tmp/perfgate-demo.xml

test: setup fixtures
	$(CARGO) build --locked --all-targets
	$(CARGO) test --locked -- --test-threads=1

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

bench: build fixtures
	$(PERFGATE) bench

clean:
	$(CARGO) clean
	rm -rf fixtures/bin fixtures/gen

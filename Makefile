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
	@bash scripts/demo.sh

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

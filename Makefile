# runsc-guard: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
SUITES ?= bookworm trixie sid upstream

.PHONY: build test unit e2e bench soak shim-memory fuzz fuzz-smoke demo lint deps deb image clean

## build: the shim and the operator CLI (release), in target/release/
build:
	$(CARGO) build --release --bin containerd-shim-runsc-v1 --bin runsc-guard

## test: unit and integration tests, a bounded fuzzing run of every fuzz target, then the VM suite
## for $(SUITES)
test: unit fuzz-smoke e2e

## unit: unit tests and the integration tests (real shim binary against the fake runsc)
unit:
	$(CARGO) build --workspace
	$(CARGO) test --workspace

## e2e: the VM suite alone (SUITES="bookworm" to narrow it); ends with "N passed, N failed"
e2e:
	SUITES="$(SUITES)" tests/e2e/run.sh

# The bench and the soak run on bookworm unless SUITES is given (make bench SUITES="trixie sid").
BENCH_SUITES := $(if $(filter command line environment,$(origin SUITES)),$(SUITES),bookworm)

## bench: pod start latency, the shim's own time and memory per pod against the stock path and runc,
## in one VM run (not part of test); BENCH_N pods per handler (default 10), SUITES (default bookworm)
bench:
	SUITES="$(BENCH_SUITES)" tests/e2e/bench.sh bench

## soak: SOAK_N create/delete cycles (default 100) of a pod; nothing the node holds may grow
soak:
	SUITES="$(BENCH_SUITES)" tests/e2e/bench.sh soak

## shim-memory: the release shim daemon's RSS for a pod of 1 and of 4 containers, on this host
## against fake-runsc (root; not part of test; SHIM_MEMORY_MAPS=1 lists the largest mappings)
shim-memory:
	$(CARGO) build --release --bin containerd-shim-runsc-v1
	$(CARGO) build --workspace
	RUNSC_GUARD_TEST_SHIM=$(CURDIR)/target/release/containerd-shim-runsc-v1 $(CARGO) test --test shim_memory \
		-- --ignored --nocapture

## fuzz: coverage-guided fuzzing (cargo-fuzz, libFuzzer; installed from crates.io when missing) of
## the parsers of hostile input and the guard's plan, FUZZ_SECONDS per target (default 300); seeds
## in fuzz/corpus/, crashes in fuzz/artifacts/; not part of test (fuzz/run.sh, docs/CONTRIBUTING.md)
FUZZ_SECONDS ?= 300
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

## fuzz-smoke: the same, FUZZ_SMOKE_SECONDS per target (default 60): a bounded run that finds the
## shallow crashes; part of test
FUZZ_SMOKE_SECONDS ?= 60
fuzz-smoke:
	fuzz/run.sh $(FUZZ_SMOKE_SECONDS)

## demo: the incident's pod under the stock handler and under this shim, side by side
demo:
	tests/e2e/demo.sh

## lint: what CI checks besides the tests
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) fmt --manifest-path tests/e2e/driver/Cargo.toml -- --check
	$(CARGO) clippy --manifest-path tests/e2e/driver/Cargo.toml --all-targets -- -D warnings

## deps: what the build and the VM suite need from Debian's archive (run as root)
deps:
	tests/e2e/install-deps.sh

## deb: the Debian package (cargo-deb, installed from crates.io when missing), in target/debian/
deb:
	command -v cargo-deb >/dev/null 2>&1 || $(CARGO) install cargo-deb --locked
	$(CARGO) deb --locked
	@ls target/debian/*.deb

## image: the installer DaemonSet's image (packaging/k8s/Dockerfile), runsc-guard-installer:VERSION
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
image: build
	docker build -f packaging/k8s/Dockerfile -t runsc-guard-installer:$(VERSION) .

clean:
	$(CARGO) clean
	rm -rf fuzz/target fuzz/artifacts
	rm -rf tests/e2e/out

# The conformance run is on the upstream suite unless SUITES is given (Debian's suites: guard only).
CONFORMANCE_SUITES := $(if $(filter command line environment,$(origin SUITES)),$(SUITES),upstream)

## conformance: critest (cri-tools 1.37) against the upstream node, once per handler: runc, gVisor's
## shim, this shim (guard); ends with the guard's "N passed, N failed" (see tests/e2e/README.md)
.PHONY: conformance
conformance:
	SUITES="$(CONFORMANCE_SUITES)" tests/e2e/conformance.sh

## k8s: a one-node Kubernetes cluster in the upstream suite's guest (etcd, kube-apiserver,
## kube-controller-manager, kubelet 1.37, kubectl; tools/go), the shim installed from the .deb and
## selected through packaging/k8s's RuntimeClass; ends with "N passed, N failed" (not part of test)
.PHONY: k8s
k8s:
	tests/e2e/k8s.sh

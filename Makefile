# blockgate: `make run` starts the daemon on embedded defaults, `make test` runs the suite.
SWIFT ?= swift
export PATH := /opt/swift/usr/bin:/usr/bin:$(PATH)

.PHONY: all deps build release run test e2e bench fuzz sanitize soak install uninstall clean

all: build

deps:
	@scripts/install-deps.sh test

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## Start the daemon with data under ./var, NBD on ./var/nbd.sock and 127.0.0.1:10809.
run: release
	.build/release/blockgate serve

## The whole suite: unit, protocol, engine, and real clients (nbdinfo, qemu-io, qemu-img, nbdcopy, libnbd).
test:
	@scripts/install-deps.sh test
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-xctest

## The real kernel client in a small VM: ext4 and xfs on a thin volume, fstrim, allocation check.
e2e: release
	@scripts/install-deps.sh e2e
	scripts/e2e/run-all.sh .build/release/blockgate

## fio over NBD against blockgate, nbdkit and qemu-nbd in the same run.
bench: release
	@scripts/install-deps.sh bench
	scripts/bench/run.sh .build/release/blockgate

## libFuzzer over the NBD wire (negotiation and transmission), FUZZ_SECONDS long.
FUZZ_SECONDS ?= 300
fuzz: deps
	scripts/fuzz/run.sh $(FUZZ_SECONDS)

## Crash trials (N rounds each on a thin and a cached volume), a full disk, FAULT_MINUTES of
## object-store faults under a writer, CRASH_STATES power losses of the crash-state explorer, and
## LOAD_MINUTES of 64 connections of mixed I/O with memory watched
## (make soak N=200 FAULT_MINUTES=10 LOAD_MINUTES=10 CRASH_STATES=2000 for the full run).
N ?= 20
FAULT_MINUTES ?= 2
LOAD_MINUTES ?= 0
CRASH_STATES ?= 400
soak: deps
	@scripts/install-deps.sh bench
	scripts/soak/run.sh $(N) $(LOAD_MINUTES) $(FAULT_MINUTES) $(CRASH_STATES)

## The whole suite once under AddressSanitizer and once under ThreadSanitizer (own build dirs).
## replace_intrin=0: Foundation's Process.run (uninstrumented) memcpy's past a getdents buffer.
sanitize: deps
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=replace_intrin=0:detect_leaks=0 \
		$(SWIFT) test --skip-build --disable-xctest --sanitize=address --scratch-path .build-asan
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	TSAN_OPTIONS=suppressions=$(CURDIR)/scripts/tsan-suppressions.txt \
		$(SWIFT) test --skip-build --disable-xctest --sanitize=thread --scratch-path .build-tsan

## The binary (and blockgate-rsh), systemd units, example config, nbdtab and shell completions
## (PREFIX, DESTDIR honoured); MTX_DIR=DIR also makes DIR/mtx run blockgate's tape changer.
install: release
	scripts/install.sh install .build/release/blockgate

uninstall:
	scripts/install.sh uninstall .build/release/blockgate

clean:
	rm -rf .build .build-fuzz .build-asan .build-tsan

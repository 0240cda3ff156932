# Thin wrapper over CMake and ctest. `make run` and `make test` are the two commands of README.md.
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
# Seconds each libFuzzer target runs in test-fuzz (14 targets, two at a time; `make test`
# took 11 min on 2 cores with 15 s, the fuzz stage about 2 min of it).
FUZZ_SECONDS ?= 5
JOBS ?= $(shell nproc)

.PHONY: bench cluster-up cluster-down soak all deps configure build rotor run test test-unit test-asan test-tsan test-fuzz npm format \
	format-check clean

all: build

deps:
	@./.ci/deps

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

rotor: configure
	@cmake --build $(BUILD) -j $(JOBS) --target rotor

# Development node on 127.0.0.1:8000: config.json (random token secret and API key) is
# created on first run; channels without namespace allow subscribe, publish by
# subscribers, presence and history with recovery, set through environment variables.
DEV_ENV = ROTOR_CHANNEL_WITHOUT_NAMESPACE_ALLOW_SUBSCRIBE_FOR_CLIENT=true \
	ROTOR_CHANNEL_WITHOUT_NAMESPACE_ALLOW_PUBLISH_FOR_SUBSCRIBER=true \
	ROTOR_CHANNEL_WITHOUT_NAMESPACE_PRESENCE=true \
	ROTOR_CHANNEL_WITHOUT_NAMESPACE_ALLOW_PRESENCE_FOR_SUBSCRIBER=true \
	ROTOR_CHANNEL_WITHOUT_NAMESPACE_HISTORY_SIZE=100 \
	ROTOR_CHANNEL_WITHOUT_NAMESPACE_HISTORY_TTL=300s \
	ROTOR_CHANNEL_WITHOUT_NAMESPACE_FORCE_RECOVERY=true \
	ROTOR_CHANNEL_WITHOUT_NAMESPACE_ALLOW_HISTORY_FOR_SUBSCRIBER=true \
	ROTOR_PROMETHEUS_ENABLED=true ROTOR_HEALTH_ENABLED=true

run: rotor
	@[ -f config.json ] || ./$(BUILD)/rotor genconfig -c config.json
	$(DEV_ENV) ./$(BUILD)/rotor -c config.json -a 127.0.0.1 -p 8000 $(ARGS)

npm:
	@cd tests/integration && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; }
	@cd tests/deploy && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; }

test: build npm
	cd $(BUILD) && ctest --output-on-failure -j 2
	$(MAKE) test-asan
	$(MAKE) --no-print-directory test-tsan
	$(MAKE) --no-print-directory test-fuzz

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L 'unit|fuzz|style'

# The whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer, with one worker
# (it shares the engine's loop and thread; the other stages run two). RT_TEST_SANITIZER
# (here and in test-tsan) tells tests whose numbers a sanitizer distorts (RSS) to relax them.
test-asan: deps npm
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRT_SANITIZE=address,undefined >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && RT_TEST_SANITIZER=address,undefined RT_TEST_WORKERS=1 \
		ctest --output-on-failure -j 2

# Unit, integration and corpus-replay tests again under ThreadSanitizer (clang). A report
# stops the process at once (exit code 66), so a race in a rotor that a test later kills
# still fails that test. atexit_sleep_ms=0: TSan otherwise waits 1 s in exit(), which the
# shutdown-timing tests would measure. tests/tsan.supp: third-party code only, each entry
# says why.
TSAN_OPTIONS_CI = halt_on_error=1 atexit_sleep_ms=0 second_deadlock_stack=1 \
	suppressions=$(CURDIR)/tests/tsan.supp
test-tsan: deps npm
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DRT_SANITIZE=thread >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS="$(TSAN_OPTIONS_CI)" RT_TEST_SANITIZER=thread \
		ctest --output-on-failure -j 2 -L 'unit|integration|fuzz'

# Every libFuzzer target (clang, ASan+UBSan) for FUZZ_SECONDS from its seed corpus; any
# crash, leak, hang or OOM fails, with the input in $(FUZZ_BUILD)/tests/fuzz/fuzz-artifacts/.
test-fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DRT_FUZZ=ON -DRT_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	cd $(FUZZ_BUILD) && ctest --output-on-failure -j 2 -L fuzzrun

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)

# Benchmarks beside Nchan (tests/bench/README.md); not part of `make test`.
bench: build
	@./.ci/deps-bench
	tests/bench/run_all.sh

# The docker-compose topology as processes on loopback (deploy/local-cluster).
cluster-up: rotor
	deploy/local-cluster start

cluster-down:
	deploy/local-cluster stop

# A minute of connection churn (tests/soak/churn.sh); not part of `make test`.
soak: build
	tests/soak/churn.sh

# Thin wrapper over CMake and ctest. `make run` and `make test` are the two commands of README.md.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)

.PHONY: all deps configure build rotor run test test-unit test-asan npm format format-check clean

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

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L 'unit|fuzz|style'

# The whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps npm
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRT_SANITIZE=address,undefined >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j 2

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

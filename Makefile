# Thin wrapper over CMake and ctest. `make run` and `make test` are the two commands of README.md.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)

.PHONY: all deps build run test test-unit test-asan npm format format-check clean

all: build

deps:
	@./.ci/deps

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/rotor $(ARGS)

npm:
	@cd tests/integration && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; }

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

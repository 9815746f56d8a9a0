# Every workflow is a make target. The first use creates .venv and installs the pinned tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BOARD ?= esp32-devkitc

.PHONY: run test pytest lint typecheck bench explore verify deploy scenarios chip clean

run: $(STAMP)  ## the virtual device with its operator console: make run [ARGS="--speed 10"]
	$(BIN)/laserctl run $(ARGS)

test: lint typecheck pytest  ## every test: ruff, pyright on hw.py, pytest (CPython + MicroPython + mpy-cross)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 13) else "Python 3.10-3.13 is needed, %s has %d.%d: make PYTHON=python3.12 ..." % (sys.executable, *v))'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# On every core (pytest-xdist); a module whose fixture is expensive keeps its tests on one worker.
PYTEST := $(BIN)/pytest -q -n auto --dist loadgroup
pytest: $(STAMP) $(CHIP)
	$(PYTEST)

# The chip-shaped interpreter: MicroPython v1.28.0's unix port, 32-bit with single floats, the
# firmware frozen in through its image manifest (host_tools/chip.py, docs/chip.md). Offline:
# MICROPYTHON_SRC and MICROPYTHON_LIB_SRC name local copies of the sources.
export MICROPYTHON_SRC MICROPYTHON_LIB_SRC
CHIP := build/chip/micropython
CHIP_INPUTS := host_tools/chip.py image/chip/manifest.py firmware/manifest.py \
	$(wildcard firmware/lib/*.py) host_tools/vdevice/mpy/manifest.py $(wildcard host_tools/vdevice/mpy/*.py)
chip: $(CHIP)
$(CHIP): $(STAMP) $(CHIP_INPUTS)
	$(BIN)/python -m host_tools.chip --out $@

lint: $(STAMP)
	$(BIN)/ruff check .

# The hardware module against the ESP32 stubs; the MicroPython stdlib stubs replace CPython's.
typecheck: $(STAMP)
	$(BIN)/pyright -p firmware --pythonpath $(BIN)/python \
		--typeshedpath "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"

bench: $(STAMP)  ## tick cost, allocation, heap, .mpy size; every injected fault's reaction time
	$(BIN)/laserctl bench --out build/bench.json
	$(BIN)/laserctl faults --out build/faults.json

# The exhaustive search of the controller's state space, deeper than make test's (DEPTH=8).
DEPTH ?= 12
explore: $(STAMP)
	$(BIN)/python tests/explore.py --depth $(DEPTH) --progress

# make test, harder (not what CI runs): every test with ten times the property tests' examples
# (the hypothesis profile "verify", tests/conftest.py), then the exhaustive search at depth 12
# and the monitors' search at depth 4.
verify: lint typecheck $(STAMP) $(CHIP)
	HYPOTHESIS_PROFILE=verify $(PYTEST)
	$(BIN)/python tests/explore.py --depth 12 --monitor-depth 4 --progress

scenarios: $(STAMP)  ## run every shipped scenario and check its expectations
	@for f in tests/scenarios/*.json; do echo "$$f"; $(BIN)/laserctl scenario $$f || exit 1; done

# Compile the firmware and copy what changed to an ESP32 running MicroPython (laserctl deploy,
# docs/deploying.md): make deploy PORT=/dev/ttyUSB0 [BOARD=esp32-devkitc] [DRY_RUN=1]
# The virtual device is deployed to the same way: `laserctl vdevice --pty /tmp/ttyV` in one
# terminal, then make deploy PORT=/tmp/ttyV BOARD=sim
deploy: $(STAMP)
	@test -n "$(PORT)" || { echo "usage: make deploy PORT=/dev/ttyUSB0 [BOARD=esp32-devkitc]" \
		"[DRY_RUN=1] (virtual device: PORT=/tmp/ttyV BOARD=sim)"; exit 2; }
	$(BIN)/laserctl deploy --port $(PORT) --board $(BOARD) $(if $(DRY_RUN),--dry-run)

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis

# Every workflow is a make target. The first use creates .venv and installs the pinned tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BOARD ?= esp32-devkitc

.PHONY: run test pytest lint typecheck bench explore verify deploy flash scenarios chip image clean

run: $(STAMP)  ## the virtual device with its operator console: make run [ARGS="--speed 10"]
	$(BIN)/laserctl run $(ARGS)

test: lint typecheck pytest  ## every test: ruff, pyright on hw.py, pytest (CPython + MicroPython + mpy-cross)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 13) else "Python 3.10-3.13 is needed, %s has %d.%d: make PYTHON=python3.12 ..." % (sys.executable, *v))'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The chip-shaped interpreter: MicroPython v1.28.0's unix port, 32-bit with single floats, the
# firmware frozen in through its image manifest (host_tools/chip.py, docs/chip.md). Offline:
# MICROPYTHON_SRC and MICROPYTHON_LIB_SRC name local copies of the sources.
export MICROPYTHON_SRC MICROPYTHON_LIB_SRC
CHIP := build/chip/micropython
CHIP_INPUTS := host_tools/chip.py host_tools/image.py image/chip/manifest.py firmware/manifest.py \
	$(wildcard firmware/lib/*.py) host_tools/vdevice/mpy/manifest.py $(wildcard host_tools/vdevice/mpy/*.py)
chip: $(CHIP)
$(CHIP): $(STAMP) $(CHIP_INPUTS)
	$(BIN)/python -m host_tools.chip --out $@

# After CHIP's definition: a rule's prerequisites are expanded when make reads it.
# On every core (pytest-xdist): each test its own unit of work, but a module with a module-scoped
# fixture (the exhaustive search, the bench) stays on one worker (tests/conftest.py).
PYTEST := $(BIN)/pytest -q -n auto --dist loadscope
pytest: $(STAMP) $(CHIP)
	$(PYTEST)

# The ESP32 firmware image (host_tools/image.py, docs/flashing.md): image/esp32/LASER_ESP32 built
# with ESP-IDF v5.5.1 inside Espressif's container (docker or podman, and the network), from the
# MicroPython source the chip build uses -> build/image/firmware.bin and its identity,
# build/image/image_id.json. ESP-IDF's own build decides what to rebuild, so this always runs it.
image: $(STAMP)
	$(BIN)/python -m host_tools.image

lint: $(STAMP)
	$(BIN)/ruff check .

# The hardware module against the ESP32 stubs; the MicroPython stdlib stubs replace CPython's.
typecheck: $(STAMP)
	$(BIN)/pyright -p firmware --pythonpath $(BIN)/python \
		--typeshedpath "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"

bench: $(STAMP) $(CHIP)  ## tick cost, allocation, heap, .mpy size; every injected fault's reaction time
	$(BIN)/laserctl bench --out build/bench.json
	$(BIN)/laserctl faults --out build/faults.json

# The exhaustive search of the controller's state space (docs/search.md), deeper than make test's
# (6 symbols, and 3 of the monitors' alphabet): make explore [DEPTH=12] [MONITOR_DEPTH=3].
DEPTH ?= 12
MONITOR_DEPTH ?= 3
explore: $(STAMP)
	$(BIN)/python tests/search --depth $(DEPTH) --monitor-depth $(MONITOR_DEPTH) --progress

# make test, harder (not what CI runs): every test with the hypothesis profile "verify"
# (tests/conftest.py: ten times the examples; the state machine's and the rhythm search's
# property tests more still, see their docstrings), then the exhaustive search at depth 12 and
# the monitors' search at depth 4.
verify: lint typecheck $(STAMP) $(CHIP)
	HYPOTHESIS_PROFILE=verify $(PYTEST)
	$(BIN)/python tests/search --depth 12 --monitor-depth 4 --progress

# Every shipped scenario, those of faults/ and presets/ too (tests/test_scenarios.py runs them).
SCENARIOS := $(sort $(wildcard tests/scenarios/*.json tests/scenarios/*/*.json))
scenarios: $(STAMP)  ## run every shipped scenario and check its expectations
	@$(foreach f,$(SCENARIOS),echo "$(f)" && $(BIN)/laserctl scenario $(f) &&) true

# Copy the firmware's filesystem files (boot.py, main.py, the board file, the presets, the
# integrity manifest) to an ESP32 running this checkout's image (make image, make flash), and
# check its identity (laserctl deploy, docs/deploying.md):
#   make deploy PORT=/dev/ttyUSB0 [BOARD=esp32-devkitc] [PIN=...] [DRY_RUN=1]
# PIN: the service PIN, for a device whose firmware runs (passed as $LASERCTL_PIN, not on the
# command line); without it and without a terminal to ask on, deploy says how to give it.
# REPLACE_BOARD=1: put BOARD in place of another board on a calibrated device (else refused).
# MPY=1: the development path for a board with PSRAM on a stock MicroPython: firmware/lib as
# .mpy files (too big for an ESP32 without PSRAM). The 64-bit virtual device is such a board:
# `laserctl vdevice --pty /tmp/ttyV` in one terminal, then make deploy PORT=/tmp/ttyV BOARD=sim MPY=1
deploy: $(STAMP)
	@test -n "$(PORT)" || { echo "usage: make deploy PORT=/dev/ttyUSB0 [BOARD=esp32-devkitc]" \
		"[PIN=...] [DRY_RUN=1] [MPY=1] [REPLACE_BOARD=1] (virtual device: PORT=/tmp/ttyV" \
		"BOARD=sim)"; exit 2; }
	$(if $(PIN),@LASERCTL_PIN='$(PIN)') $(BIN)/laserctl deploy --port $(PORT) --board $(BOARD) \
		$(if $(DRY_RUN),--dry-run) $(if $(MPY),--mpy) $(if $(REPLACE_BOARD),--replace-board)

# Write the ESP32 image to a board with esptool (the flash extra: pip install -e '.[flash]'):
# make flash PORT=/dev/ttyUSB0 [IMAGE=build/image/firmware.bin]; then make deploy (docs/flashing.md)
IMAGE ?= build/image/firmware.bin
flash: $(STAMP)
	@test -n "$(PORT)" || { echo "usage: make flash PORT=/dev/ttyUSB0 [IMAGE=$(IMAGE)]"; exit 2; }
	$(BIN)/laserctl flash --port $(PORT) --image $(IMAGE)

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis

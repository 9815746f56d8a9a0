# The therapy-laser controller's ESP32 board (BOARD=LASER_ESP32, built out of the tree with
# `make BOARD_DIR=.../image/esp32/LASER_ESP32`: host_tools/image.py). ESP32_GENERIC's
# configuration (ports/esp32/boards/ESP32_GENERIC, MicroPython v1.28.0) with three changes:
# - no boards/sdkconfig.ble: the controller has no radio function (mpconfigboard.h, sdkconfig.board);
# - no btree module: it needs the berkeley-db submodule, which the release archive lacks, and the
#   firmware does not use it;
# - the firmware frozen in (manifest.py, which includes the port's own manifest).
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

set(MICROPY_PY_BTREE OFF)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)

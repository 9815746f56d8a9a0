# The chip-shaped interpreter (`make chip`, host_tools/chip.py): MicroPython's unix port built
# 32-bit with single floats, frozen with what the ESP32 image freezes (firmware/manifest.py) and
# the simulated machine that stands in for the chip's peripherals.
include("$(MPY_DIR)/extmod/asyncio")
include("../../firmware/manifest.py")
include("../../host_tools/vdevice/mpy/manifest.py")

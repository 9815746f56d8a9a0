# The ESP32 image's frozen modules: the port's own (its _boot.py mounts the filesystem; asyncio;
# the micropython-lib packages ESP32_GENERIC ships), then the firmware's, through the one manifest
# the chip-shaped interpreter includes too (image/chip/manifest.py). `make image` builds it:
# host_tools/image.py, docs/flashing.md.
include("$(PORT_DIR)/boards/manifest.py")
include("../../../firmware/manifest.py")

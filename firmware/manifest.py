# The firmware's own modules, frozen into an image: their bytecode then runs from flash instead of
# the heap (docs/memory.md). Both images include this one file: the ESP32's
# (image/esp32/LASER_ESP32/manifest.py) and the chip-shaped interpreter's (image/chip/manifest.py).
# boot.py, main.py and the data files stay on the filesystem (laserctl deploy copies them).
#
# Beside the modules, the image's identity: image_id.py (VERSION, BUILD_ID), which the image build
# writes into the folder $LASER_IMAGE_ID_DIR names (host_tools/image.py; `make image` and `make
# chip` set it). The boot self-test compares BUILD_ID with the one the integrity manifest names,
# so an image without it could never arm: the build stops here instead.
import os

_identity = os.environ.get("LASER_IMAGE_ID_DIR")
if not _identity:
    raise Exception("LASER_IMAGE_ID_DIR is not set: build the image with `make image` or `make "
                    "chip` (host_tools/image.py writes image_id.py, the image's identity)")
module("image_id.py", base_path=_identity)
require("ssd1306")  # the operator panel's display driver, from micropython-lib (panel.py)
freeze("lib")

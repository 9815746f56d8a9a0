# The firmware's own modules, frozen into an image: their bytecode then runs from flash instead of
# the heap (docs/memory.md). Both images include this one file: the ESP32's
# (image/esp32/LASER_ESP32/manifest.py) and the chip-shaped interpreter's (image/chip/manifest.py).
# boot.py, main.py and the data files stay on the filesystem (laserctl deploy copies them).
freeze("lib")

"""`laserctl flash --port PORT [--image FILE] [--erase]`: write a firmware image to an ESP32 with
esptool (the `flash` extra: esptool 5.6.0), through the chip's ROM bootloader.

The image is what `make image` builds (build/image/firmware.bin: bootloader, partition table and
MicroPython with the firmware frozen in), written at 0x1000, the ESP32's bootloader address. The
filesystem lies beyond it in the flash, so a device's settings, calibration and journal survive
a flash; --erase erases the whole chip first (a new board, or one whose filesystem is another
firmware's). Then `laserctl deploy` copies the filesystem files (docs/flashing.md).

Exit status: 0 written; 2 nothing was written (no esptool, no such image, not an ESP32 image);
otherwise esptool's own status (the port, the chip, the transfer: esptool says which).
"""

import importlib.util
import json
import shlex
import subprocess
import sys
from pathlib import Path

from host_tools import image

ESPTOOL_VERSION = "5.6.0"  # pyproject.toml's flash extra
DEFAULT_BAUD = 460800
_IMAGE_MAGIC = 0xE9  # the first byte of an ESP32 image: the bootloader's header (esptool's)


class FlashError(Exception):
    """Nothing was written; the message is for the user."""


def esptool_argv(port, image_path, baud=DEFAULT_BAUD, erase=False):
    """The esptool command line (v5: commands with dashes) that writes `image_path`."""
    argv = [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", str(port),
            "--baud", str(baud), "write-flash"]
    if erase:
        argv.append("--erase-all")
    return argv + ["0x%x" % image.FLASH_OFFSET, str(image_path)]


def check_image(path):
    """Refuse what is not an ESP32 image; returns the identity `make image` wrote beside it
    (image_id.json), or None."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            first = f.read(1)
    except OSError as e:
        raise FlashError("cannot read the image %s: %s (build it with `make image`)"
                         % (path, e.strerror)) from e
    if first != bytes([_IMAGE_MAGIC]):
        raise FlashError("%s is not an ESP32 firmware image (its first byte is %s, an image "
                         "starts with 0x%02X)" % (path, "0x%02X" % first[0] if first else "none",
                                                   _IMAGE_MAGIC))
    sidecar = path.with_name("image_id.json")
    try:
        return json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None


def main(args):
    try:
        if importlib.util.find_spec("esptool") is None:
            raise FlashError("esptool is not installed: it is the `flash` extra, pip install -e "
                             "'.[flash]' (esptool %s; docs/flashing.md)" % ESPTOOL_VERSION)
        identity = check_image(args.image)
    except FlashError as e:
        print("laserctl flash: %s" % e, file=sys.stderr)
        return 2
    if identity is None:
        print("image %s: no image_id.json beside it, its identity is unknown" % args.image)
    else:
        print("image %s: firmware %s, image %s" % (args.image, identity.get("version"),
                                                    identity.get("build_id")))
        if identity.get("build_id") != image.build_id():
            print("laserctl flash: warning: this checkout builds image %s; `laserctl deploy` "
                  "from it will refuse the device" % image.build_id(), file=sys.stderr)
    argv = esptool_argv(args.port, args.image, args.baud, args.erase)
    print("$ %s" % " ".join(shlex.quote(word) for word in argv), flush=True)
    if args.dry_run:
        return 0
    status = subprocess.call(argv)
    if status == 0:
        print("flashed: now `laserctl deploy --port %s --board NAME` copies the filesystem "
              "files (docs/deploying.md)" % args.port)
    return status

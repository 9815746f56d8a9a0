"""What is deployed to a device, and its integrity manifest.

`deploy_files` is the one list of files a device needs (the vdevice image and `laserctl deploy`
both use it). On a device whose MicroPython image has the firmware frozen in (the product: `make
image`; the chip-shaped interpreter) that is what lives on the filesystem: boot.py, main.py, the
board file and the preset library. On a stock MicroPython (the .mpy development path, and the
64-bit virtual device) the modules of firmware/lib come too, as lib/NAME.py (deploy compiles them
to .mpy). `manifest` gives their SHA-256 digests in the form firmware/lib/integrity.py checks at
boot, with the build id of the image the device must run: {"version": ..., "image": build id or
null, "files": {device name: hex digest}}. The manifest goes on the device last.
"""

import hashlib

from host_tools import chip, paths

MANIFEST_NAME = "manifest.json"


def deploy_files(board_name, frozen=False):
    """{name on the device: source path} for a board: boot.py, main.py, its board file and the
    presets; with the modules of firmware/lib (and the micropython-lib driver they use) unless the
    image has them frozen in."""
    files = {"boot.py": paths.FIRMWARE / "boot.py", "main.py": paths.FIRMWARE / "main.py",
             "protocols.json": paths.FIRMWARE / "protocols.json",
             "board.json": paths.board_path(board_name)}
    if not frozen:
        for module in sorted(paths.FIRMWARE_LIB.glob("*.py")):
            files["lib/" + module.name] = module
        # What the image freezes from micropython-lib (firmware/manifest.py's require), from the
        # same source: the operator panel's display driver.
        files["lib/ssd1306.py"] = chip.micropython_lib_file(chip.SSD1306_DRIVER)
    return files


def firmware_version():
    return paths.firmware_module("app").VERSION


def manifest(files, image=None):
    """The manifest of {device name: path}, for a device running the firmware image whose build
    id is `image` (host_tools.image.build_id()), or none (None: the firmware in files)."""
    digests = {name: hashlib.sha256(path.read_bytes()).hexdigest()
               for name, path in sorted(files.items())}
    return {"version": firmware_version(), "image": image, "files": digests}

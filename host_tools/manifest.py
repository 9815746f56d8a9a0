"""What is deployed to a device, and its integrity manifest.

`deploy_files` is the one list of files a device needs (the vdevice image and `laserctl deploy`
both use it; deploy compiles the lib/ modules to .mpy). `manifest` gives their SHA-256 digests in
the form firmware/lib/integrity.py checks at boot: {"version": ..., "files": {device name: hex
digest}}. The manifest goes on the device last.
"""

import hashlib

from host_tools import paths

MANIFEST_NAME = "manifest.json"


def deploy_files(board_name):
    """{name on the device: source path} for a board: the firmware, its board file, the presets."""
    files = {"boot.py": paths.FIRMWARE / "boot.py", "main.py": paths.FIRMWARE / "main.py",
             "protocols.json": paths.FIRMWARE / "protocols.json",
             "board.json": paths.board_path(board_name)}
    for module in sorted(paths.FIRMWARE_LIB.glob("*.py")):
        files["lib/" + module.name] = module
    return files


def firmware_version():
    paths.firmware_import_path()
    import app

    return app.VERSION


def manifest(files):
    """The manifest of {device name: path}."""
    digests = {name: hashlib.sha256(path.read_bytes()).hexdigest()
               for name, path in sorted(files.items())}
    return {"version": firmware_version(), "files": digests}

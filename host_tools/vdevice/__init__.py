"""The virtual device: the unmodified firmware on the real MicroPython unix port, with a simulated
`machine` and `time` wired to a plant model (see mpy/simworld.py).

A device image is a folder laid out like the ESP32's filesystem (boot.py, main.py, lib/,
board.json, protocols.json, treatment.json); `command` runs an interpreter in it. Two
interpreters: the 64-bit unix port from the package registry, which loads the firmware from lib/,
and the chip interpreter (`chip=True`, `make chip`, docs/chip.md: 32-bit, single floats), which
runs the firmware and the simulated machine frozen into it, as the ESP32 image does: its device
image holds only the filesystem's files, no lib/.
"""

import json
import os
import shutil
from pathlib import Path

from host_tools import manifest, paths

DEFAULT_HEAP = "2M"  # the simulator shares the heap; the bench measures the firmware's own share


def load_board(name):
    """Read and validate a board with the firmware's own checks; returns (path, board dict)."""
    board_file = paths.firmware_module("board")

    path = paths.board_path(name)
    return path, board_file.load(str(path))


def check_treatment(spec, board):
    """Check a treatment with the firmware's own code, as the device will when it loads it.

    Raises ValueError naming the field, in the host's words ("protocol.power_w: ...")."""
    treatment_module = paths.firmware_module("treatment")

    if not isinstance(spec, dict):
        raise ValueError("protocol: missing (power_w, dose_j_cm2, area_cm2)")
    try:
        return treatment_module.for_board(spec, board)
    except ValueError as e:
        raise ValueError(str(e).replace("treatment", "protocol", 1)) from e


FACTORY_CALIBRATION_DATE = "2026-11-01"  # the virtual device's diode was "measured" then


def make_image(root, board_name, treatment=None, frozen=False):
    """Lay out a device filesystem in `root` as a deploy leaves it: the firmware, the board file,
    the preset library, the integrity manifest (last); the treatment; and the settings a service
    technician stores once per device: the virtual diode answers exactly as
    the board's calibration says, so that is its calibration (service PIN: the factory one).
    `frozen`: the firmware's modules are frozen into the interpreter (the chip interpreter, as
    an ESP32 image): no lib/, and the manifest names the image this checkout builds."""
    from host_tools import image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _, board = load_board(board_name)
    files = manifest.deploy_files(board_name, frozen)
    if not frozen:
        (root / "lib").mkdir(exist_ok=True)
    for name, source in files.items():
        shutil.copy(source, root / name)
    image_id = image.build_id() if frozen else None
    (root / manifest.MANIFEST_NAME).write_text(json.dumps(manifest.manifest(files, image_id)))
    if treatment is not None:
        (root / "treatment.json").write_text(json.dumps(treatment))
    (root / "settings.json").write_bytes(factory_settings(board))
    return board


def factory_settings(board, limits=None):
    """The contents of a settings.json holding the board's own calibration (and `limits`, as a
    service would lower them: {"max_power_w": 5.0})."""
    settings_module = paths.firmware_module("settings")

    values = {"calibration": board["diode"]["calibration"],
              "calibrated_on": FACTORY_CALIBRATION_DATE, "due_days": 365,
              "limits": dict(limits or {}),
              "pin": {"salt": "00" * 16,
                      "hash": settings_module.hash_pin(settings_module.FACTORY_PIN, bytes(16))}}
    return settings_module.encode(values)


def sim_config(board, **settings):
    """The world's configuration: the board's plant plus run settings (events, until_s, ...)."""
    if "plant" not in board:
        raise ValueError("board %r has no plant section: it cannot run on the virtual device"
                         % board["name"])
    config = {"table_path": str(paths.SIM_DATA / board["plant"]["thermistor_table"]),
              "ds3231": "rtc" in board}  # the battery-backed clock, where the board has one
    config.update(settings)
    return config


def command(root, config_path, interactive=False, heap=DEFAULT_HEAP, chip=False):
    """argv, env and cwd to start the virtual device whose filesystem is `root`; on the chip
    interpreter with `chip` (its image made with make_image(..., frozen=True))."""
    argv = [paths.chip_executable() if chip else paths.micropython_executable(),
            "-X", "heapsize=" + heap]
    if interactive:
        argv.append("-i")
    env = dict(os.environ)
    if chip:
        # The simulated machine and the firmware are frozen in; then the device's /lib, as the
        # ESP32's sys.path has it.
        argv += ["-m", "vdev"]
        env["MICROPYPATH"] = os.pathsep.join([".frozen", "lib"])
    else:
        # The simulated machine/time first, then the frozen modules, then the device's /lib.
        argv.append(str(paths.SIM_MPY / "vdev.py"))
        env["MICROPYPATH"] = os.pathsep.join([str(paths.SIM_MPY), ".frozen", "lib"])
    env["VDEV_CONFIG"] = str(config_path)
    return argv, env, str(root)

"""`laserctl vdevice --pty PATH` (the serial port: vdevice/pty.py), and the virtual device every
host tool runs: the unmodified firmware on the real MicroPython unix port, with a simulated
`machine` and `time` wired to a plant model (see mpy/simworld.py and mpy/sim_plant.py).

A device image is a folder laid out like the ESP32's filesystem (boot.py, main.py, lib/,
board.json, protocols.json, treatment.json): `make_image`, with the board and treatment checked
by the firmware's own code (`load_board`, `check_treatment`). `command` is the one way to start
the interpreter (the device, the bench, the heap probe, any script), `run` runs one to its end
with the serial port as a pipe. Two interpreters: the 64-bit unix port from the package
registry, which loads the firmware from lib/, and the chip interpreter (`chip=True`, `make chip`,
docs/chip.md: 32-bit, single floats), which runs the firmware and the simulated machine frozen
into it, as the ESP32 image does: its device image holds only the filesystem's files, no lib/.
"""

import json
import os
import subprocess
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


def make_image(root, board_name, treatment=None, frozen=False, mpy=False, image_id=None):
    """Lay out a device filesystem in `root` as a deploy leaves it: the firmware, the board file,
    the preset library, the integrity manifest (last); the treatment; and the settings a service
    technician stores once per device: the virtual diode answers exactly as
    the board's calibration says, so that is its calibration (service PIN: the factory one).
    `frozen`: the firmware's modules are frozen into the interpreter (the chip interpreter, as
    an ESP32 image): no lib/, and the manifest names the image this checkout builds. `mpy`: the
    modules as lib/NAME.mpy (the .mpy development path). `image_id`: the image the manifest
    names, if not the default (frozen: this checkout's; else none)."""
    from host_tools import image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _, board = load_board(board_name)
    files = manifest.build(board_name, root, frozen, compile_modules=mpy)
    if not frozen:
        (root / "lib").mkdir(exist_ok=True)
    if image_id is None and frozen:
        image_id = image.build_id()
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


# The scripts of host_tools/vdevice/mpy that start the interpreter, and the variable each reads
# its configuration file's path from. Those that mpy/manifest.py freezes into the chip
# interpreter run there with -m (their bytecode out of the measured heap); the others run from
# their source on either interpreter.
CONFIG_VARIABLES = {"vdev": "VDEV_CONFIG", "bench_tick": "BENCH_CONFIG",
                    "heap_probe": "PROBE_CONFIG", "firmware_alone": None}
FROZEN_SCRIPTS = ("vdev", "bench_tick")


def command(root, config_path=None, script="vdev", *, interactive=False, heap=DEFAULT_HEAP,
            chip=False, path=None, interpreter=None):
    """argv, env and cwd: the one way to start MicroPython for the host tools.

    `root`: the device image it runs in, its flash as the current directory (None: anywhere).
    `script`: what it runs: a script of host_tools/vdevice/mpy by name (CONFIG_VARIABLES; "vdev"
    is the virtual device: boot.py, then main.py), with `config_path` in the variable it reads;
    or the path of another script; or ("-c", CODE). `interactive`: -i, the REPL after it.
    `heap`: -X heapsize. `chip`: on the chip interpreter (make chip: 32-bit, single floats, the
    firmware and the simulated machine frozen in; its image made with make_image(...,
    frozen=True)); `interpreter`: another executable.
    `path`: the module search path (MICROPYPATH) in place of the device's, which is: on the 64-bit
    port the simulated machine's sources, then the frozen modules, then the device's /lib; on the
    chip the frozen modules, then /lib, as the ESP32's sys.path has it. () leaves the
    interpreter's own."""
    executable = interpreter or (paths.chip_executable() if chip else
                                 paths.micropython_executable())
    argv = [str(executable), "-X", "heapsize=" + str(heap)]
    if interactive:
        argv.append("-i")
    env = dict(os.environ)
    if isinstance(script, tuple):
        argv += list(script)
    elif script in CONFIG_VARIABLES:
        if chip and script in FROZEN_SCRIPTS:
            argv += ["-m", script]
        else:
            argv.append(str(paths.SIM_MPY / (script + ".py")))
        if config_path is not None and CONFIG_VARIABLES[script] is not None:
            env[CONFIG_VARIABLES[script]] = str(config_path)
    else:
        argv.append(str(script))
    if path is None:
        path = [".frozen", "lib"] if chip else [str(paths.SIM_MPY), ".frozen", "lib"]
    if path:
        env["MICROPYPATH"] = os.pathsep.join(str(folder) for folder in path)
    else:
        env.pop("MICROPYPATH", None)
    return argv, env, None if root is None else str(root)


def run(command, timeout_s=600, serial=None):
    """Run the interpreter of `command` (command()'s argv, env, cwd) to its end; returns the
    CompletedProcess, its output as text (bytes that are not UTF-8 replaced: the port may carry
    any). Its stdin is the device's serial port, a pipe: `serial(fd)`, if given, is called with
    the pipe's writing end before it starts (the world writes a scenario's lines into it: its
    configuration's serial_fd, kept open in the child); else nobody writes, a host connected and
    silent."""
    argv, env, cwd = command
    serial_in, serial_out = os.pipe()
    try:
        if serial is not None:
            serial(serial_out)
        return subprocess.run(argv, env=env, cwd=cwd, stdin=serial_in, pass_fds=(serial_out,),
                              capture_output=True, text=True, errors="replace",
                              timeout=timeout_s)
    finally:
        os.close(serial_in)
        os.close(serial_out)

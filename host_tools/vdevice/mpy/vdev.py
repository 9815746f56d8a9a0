# The virtual device's power switch, run by the real MicroPython interpreter with the device's
# filesystem as the current directory: builds the world from $VDEV_CONFIG, then does what the
# ESP32 does after a reset (boot.py, then main.py), again after every soft or hard reset. In
# scenario mode it writes the world's trace to the config's trace_path when the scenario ends.
#
# Under the serial-port supervisor (host_tools/vdevice/pty.py) the config also asks for:
#   world_board      the hardware the world simulates, from the host: the device may have a blank
#                    flash, or someone may have copied another board file onto it
#   mount_root       the device folder becomes "/", as the flash is on the board: `mpremote fs`
#                    sees the device's files and nothing else of the host
#   exit_on_reset    once boot.py/main.py have stopped, machine.soft_reset() and machine.reset()
#                    at the REPL end the process (status 0 and _HARD_RESET_STATUS), and the
#                    supervisor starts a fresh one: the REPL has no launcher loop to catch them
#                    (and a script's sys.exit() under -i only leads to the REPL)
#   announce_start   write _STARTED once a Ctrl-C would land in the launcher's try below and
#                    _RESETTING when a reset has begun; the supervisor gives this process the
#                    port's input only in between (a SIGINT earlier would kill the CPython process
#                    that hosts this interpreter while it starts up; input later would be lost)
import json
import os
import sys

import micropython
import repl_uart
import simworld
from simworld import HardReset, SimEnd, SoftReset

simworld.install()  # the simulated machine and time, before anything imports the real ones
_SIM_MODULES = ("simworld", "sim_plant", "sim_faults", "sim_machine", "sim_time", "sim_display",
                "machine", "time", "calibration", "repl_uart")
_HARD_RESET_STATUS = 75  # the exit status meaning machine.reset(); see host_tools/vdevice/pty.py
_STARTED = "\x1b_vdev started\x1b\\"  # APC strings, invisible on a terminal: vdevice/pty.py
_RESETTING = "\x1b_vdev resetting\x1b\\"


def _forget_firmware_modules():
    # A reset clears every imported module on the chip; the world itself survives.
    for name in list(sys.modules):
        if name not in _SIM_MODULES and name not in ("json", "os", "sys", "math", "micropython"):
            del sys.modules[name]


def _run_file(name):
    # As the board's script runner (pyexec_file in MicroPython's shared/runtime/pyexec.c) runs
    # boot.py and main.py: compiled, then run with Ctrl-C turned on, which the file may turn off
    # (the firmware does, first thing), and off again after it. Outside the files a 0x03 on the
    # port is data (the unix port raises KeyboardInterrupt from SIGINT only while it catches it,
    # and the supervisor sends SIGINT only then: host_tools/vdevice/pty.py).
    try:
        with open(name) as f:
            source = f.read()
    except OSError:
        return
    code = compile(source, name, "exec")
    micropython.kbd_intr(3)
    try:
        exec(code, {"__name__": "__main__"})
    finally:
        micropython.kbd_intr(-1)


def _boot(run_main):
    while True:
        try:
            _forget_firmware_modules()
            _run_file("boot.py")
            if run_main:
                _run_file("main.py")
            return
        except SoftReset:
            world.reset_pins("soft reset")
            print("MPY: soft reboot")
        except HardReset as e:
            print("virtual device: hard reset (%s)" % e)


class _Flash:
    """The device folder as the board's flash: a VfsPosix rooted there, whose listings also give
    file sizes as the ESP32's do (the unix port's give none, and `mpremote fs ls` shows them).
    A wrapper, not a subclass: the VFS layer's C code misreads a Python subclass of VfsPosix."""

    def __init__(self, folder):
        import vfs

        self._posix = vfs.VfsPosix(folder)

    def __getattr__(self, name):
        return getattr(self._posix, name)

    def __repr__(self):
        return "<Flash>"  # what `mpremote df` names the filesystem

    def ilistdir(self, path):
        for entry in self._posix.ilistdir(path):
            name, kind = entry[0], entry[1]
            full = name if path in ("", ".") else path.rstrip("/") + "/" + name
            yield (name, kind, entry[2], 0 if kind == 0x4000 else self._posix.stat(full)[6])


def _mount_device_folder_as_root():
    # The simulated machine and time may live in a host folder that is about to vanish from view:
    # simworld.install() has imported them, and the firmware and the REPL find them in
    # sys.modules.
    import vfs

    flash = _Flash(os.getcwd())
    vfs.umount("/")
    vfs.mount(flash, "/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]  # the ESP32's; the host folders are out of sight anyway
    # The world keeps the calibration module it was built with; the firmware imports its own.
    sys.modules.pop("calibration", None)


def _announce(word):
    if config.get("announce_start"):
        sys.stdout.write(word)


def _hand_resets_to_supervisor():
    import machine

    def soft_reset():
        _announce(_RESETTING)
        sys.exit(0)

    def reset():
        _announce(_RESETTING)
        print("virtual device: hard reset (machine.reset)")
        sys.exit(_HARD_RESET_STATUS)

    machine.soft_reset = soft_reset
    machine.reset = reset


def _write_trace():
    path = config.get("trace_path")
    if path:
        with open(path, "w") as f:
            json.dump(world.result(), f)


with open(os.getenv("VDEV_CONFIG")) as f:
    config = json.load(f)
world_board = config.get("world_board")
if world_board is None:
    with open("board.json") as f:
        world_board = json.load(f)
world = simworld.World(config, world_board)
simworld.WORLD = world
repl_uart.install()  # the firmware's sys.stdout: the REPL UART, which costs virtual time
if config.get("mount_root"):
    _mount_device_folder_as_root()

micropython.kbd_intr(-1)  # the launcher is not one of the board's files: see _run_file
try:
    _announce(_STARTED)
    _boot(config.get("run_main", True))
    world.run_to_end()  # main.py ended early: time still passes until the end
except SimEnd:
    pass
except KeyboardInterrupt:
    # As on the board: Ctrl-C stops main.py and leaves the REPL (the interpreter runs with -i).
    print("KeyboardInterrupt")
finally:
    _write_trace()
if config.get("exit_on_reset"):
    _hand_resets_to_supervisor()

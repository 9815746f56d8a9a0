"""`laserctl vdevice --pty PATH`: the virtual device as a serial port, for the real `mpremote`.

    mpremote -> PATH -> port pty <=> supervisor (this module) <=> interpreter pty -> micropython

Two pseudo-terminal pairs, bridged by this process:

* The **port pty** plays the board's USB-serial adapter. PATH is a symlink to its slave end, which
  is raw (8-bit clean, no echo, no line editing). The supervisor keeps that end open itself, so the
  port exists while no client is connected; output that nobody reads fills the buffer and the rest
  is dropped, as a UART with nothing attached drops it (pyserial flushes what is left on open).
* The **interpreter pty** is the controlling terminal of the MicroPython unix port running the
  firmware (vdev.py: boot.py, then main.py). It is raw as well, and translates no output
  ("\\r\\r\\n" would break mpremote). The supervisor itself turns a lone "\\n" into "\\r\\n"
  in the friendly REPL, as the board's console does for print(), so that `mpremote repl` shows
  lines rather than a staircase; the raw REPL, which mpremote parses, passes unchanged.
* **Ctrl-C** is the supervisor's job, as it is the UART driver's on the board: a 0x03 that reaches
  the interpreter while it runs Python code with the interrupt character on becomes SIGINT, i.e.
  KeyboardInterrupt (which stops an `mpremote exec` in a maintenance boot); otherwise it stays a
  byte of input, as the board's driver then puts it in the input buffer. That is the case at a
  prompt, and while the firmware runs: boot.py and main.py turn the interrupt character off
  (micropython.kbd_intr(-1)), so the JSON protocol receives a 0x03 as a byte of a line and
  refuses that line. "Runs code with the interrupt on" is read from /proc: the unix port catches
  SIGINT exactly then, and not at its prompts (where a SIGINT would kill it) nor after
  kbd_intr(-1) (SIGINT back to its default: it would kill it too). The terminal's own ISIG cannot
  do this: the unix port leaves the terminal raw while it runs raw-paste code, which is how
  mpremote sends code. The chip decides in its receive interrupt, while no code runs; the
  supervisor stops the interpreter (SIGSTOP) to look and signal, then lets it go on: a SIGINT
  sent as it turned the interrupt off would end the process (a power-on reset, a maintenance
  boot lost), and on a loaded machine the supervisor can be preempted between the two.
* **--maintenance** holds the reset button through the first boot (the world's initial input
  levels), which the firmware takes as a maintenance boot: no control loop, the REPL for
  mpremote. The button is released after that boot, so a hard reset (`mpremote reset`) boots
  the firmware normally again; a soft reset from the raw REPL runs boot.py only, as on a board.

Resets are where the unix port differs from a board, and the supervisor fills the gap:

* Soft reset. Where a board soft-reboots (Ctrl-D at a prompt, sys.exit(), machine.soft_reset()),
  the unix port ends its process. The supervisor prints what the board prints, "MPY: soft reboot",
  and starts a new one. A board soft-rebooting from the *raw* REPL runs boot.py but not main.py
  and comes straight back to the raw REPL, which mpremote waits for before every command. So the
  supervisor follows which REPL the interpreter announced last; after a reset from the raw one it
  starts vdev.py with run_main off, hides the friendly banner the unix port prints on its way to a
  prompt, and types the Ctrl-A itself.
* Hard reset. machine.reset() (mpremote's `reset`) ends the process with HARD_RESET_STATUS: the new
  one starts as at power-on, with boot.py and main.py.
* Input is held while an interpreter starts or resets. The unix port runs inside a CPython process,
  and a SIGINT during CPython's start-up kills it; bytes sent to a process about to end are lost.
  vdev.py therefore writes two invisible words (APC strings) that the supervisor strips: STARTED,
  once a Ctrl-C would land where it stops main.py, and RESETTING, when machine.reset() or
  soft_reset() has been called. Input typed in between waits for the next interpreter.

The device's flash is a host folder (--root, or a temporary one) that vdev.py mounts as "/", so
`mpremote fs ls` shows boot.py, main.py, lib/ and board.json as on the board, and nothing else.
"""

import contextlib
import errno
import json
import os
import pty
import select
import signal
import sys
import tempfile
import time
import tty
from pathlib import Path

from host_tools import paths, vdevice

SOFT_REBOOT = b"MPY: soft reboot\r\n"  # the board's words, which mpremote waits for
RAW_REPL_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_REPL_BANNER = b'Type "help()" for more information.'
UNIX_BANNER_START = b"MicroPython "
FRIENDLY_PROMPT = b">>> "
CTRL_A = b"\x01"  # enter the raw REPL
CTRL_C = 0x03
MOUNT_CALL = b"__mount()"  # what `mpremote mount` runs on the device to start its file protocol
# vdev.py's words (_STARTED, _RESETTING and _HARD_RESET_STATUS there)
WORD_START = b"\x1b_vdev "
STARTED = WORD_START + b"started\x1b\\"
RESETTING = WORD_START + b"resetting\x1b\\"
HARD_RESET_STATUS = 75
QUICK_EXIT_S = 1.0  # an interpreter that ends this soon, untouched, did not start properly ...
MAX_QUICK_EXITS = 3  # ... and after this many in a row the device gives up
STOP_WAIT_S = 1.0
READ_SIZE = 4096


class DeviceError(Exception):
    """The device cannot run; the message is for the user."""


class _Stop(Exception):
    """SIGINT, SIGTERM or SIGHUP: shut down cleanly."""


class PtyDevice:
    """The port, the interpreter behind it, and the bridge between them."""

    def __init__(self, link, root, board, ambient_c, panel_port=None, maintenance=False,
                 chip=False):
        """`link`: the port's path; `root`: the flash folder; `board`: the validated board dict;
        `ambient_c`: the room; `panel_port`: None, or the UDP port on 127.0.0.1 the world reports
        to and takes operator inputs from (host_tools/virtual_panel.py), for every interpreter;
        `maintenance`: the reset button is held through the first boot (then released, as a
        technician's thumb is), which makes it a maintenance boot; `chip`: the chip interpreter,
        the firmware frozen into it (its flash holds no lib/)."""
        self.link = Path(link)
        self.chip = chip
        self.button_held_at_boot = maintenance
        self.root = Path(root)
        self.board = board
        self.ambient_c = ambient_c
        self.panel_port = panel_port
        self.workdir = tempfile.TemporaryDirectory(prefix="laserctl-vdevice-")
        self.config_path = Path(self.workdir.name) / "world.json"
        self.port_fd = self.port_slave_fd = None
        self.interp_fd = self.interp_pid = None
        self.to_interpreter = bytearray()  # input the interpreter has not been given yet
        self.recent_input = b""  # the last bytes of input, for a MOUNT_CALL split across reads
        self.power_on_at = time.monotonic()
        self.quick_exits = 0
        self._reset_interpreter_state(raw_repl=False)

    def _reset_interpreter_state(self, raw_repl):
        self.phase = "starting"  # -> "running" (input flows) -> "resetting" (input waits)
        self.started_at = time.monotonic()
        self.got_input = False
        self.raw_repl = False  # which REPL the interpreter announced last
        self.hiding_banner = raw_repl  # restarting into the raw REPL: hold the friendly banner
        self.held_output = bytearray()
        self.partial_word = b""  # output that may be the start of one of vdev.py's words
        self.recent_output = b""  # the last bytes of output, for banners split across reads
        self.last_output_byte = b""
        self.binary_console = False  # mpremote mount's protocol runs: pass output unchanged

    # -- the port ----------------------------------------------------------------------------

    def open_port(self):
        if self.link.is_symlink() and not self.link.exists():
            self.link.unlink()  # left behind by a device that was killed
        if self.link.exists() or self.link.is_symlink():
            raise DeviceError("%s already exists: choose another --pty path" % self.link)
        self.port_fd, self.port_slave_fd = os.openpty()
        tty.setraw(self.port_slave_fd)
        os.set_blocking(self.port_fd, False)
        os.symlink(os.ttyname(self.port_slave_fd), self.link)

    def _to_port(self, data):
        # When nobody reads the port its buffer fills and the rest is lost, as on a UART.
        with contextlib.suppress(BlockingIOError):
            os.write(self.port_fd, data)

    def _from_port(self):
        try:
            data = os.read(self.port_fd, READ_SIZE)
        except BlockingIOError:
            return
        self.got_input = True
        self.to_interpreter += data
        seen = self.recent_input + data
        self.binary_console = self.binary_console or MOUNT_CALL in seen
        self.recent_input = seen[-len(MOUNT_CALL):]

    # -- the interpreter -----------------------------------------------------------------------

    def start_interpreter(self, raw_repl=False):
        """Boot the device: boot.py and main.py, or boot.py and the raw REPL after a soft reset
        from the raw REPL."""
        # Each interpreter's world opens the panel's channel afresh (from a new address).
        panel = {} if self.panel_port is None else {"control_port": self.panel_port}
        held = {"initial": {"reset": True}} if self.button_held_at_boot else {}
        self.button_held_at_boot = False  # released once the boot has seen it
        config = vdevice.sim_config(
            self.board, realtime=True, ambient_c=self.ambient_c, run_main=not raw_repl,
            world_board=self.board, mount_root=True, exit_on_reset=True, announce_start=True,
            # ticks_ms runs on across soft resets, as on the chip; a hard reset restarts it.
            clock_start_ms=int((time.monotonic() - self.power_on_at) * 1000), **panel, **held)
        self.config_path.write_text(json.dumps(config))
        # The simulator imports the firmware's calibration module for its plant model: from the
        # checkout it was written with, not from the flash, which may be blank or hold another
        # version. Once vdev.py has mounted the flash, the firmware sees only the board's path.
        # (On the chip interpreter the frozen one comes first anyway.)
        argv, env, cwd = vdevice.command(
            self.root, self.config_path, interactive=True, chip=self.chip,
            path=None if self.chip else [paths.SIM_MPY, ".frozen", paths.FIRMWARE_LIB])
        pid, fd = pty.fork()  # the child gets its own session with the pty as controlling tty
        if pid == 0:
            try:
                tty.setraw(0)  # no signals from bytes (see _to_interpreter), no output changes
                os.chdir(cwd)
                os.execve(argv[0], argv, env)
            except BaseException as e:  # noqa: BLE001 - never return into the supervisor's code
                os.write(2, ("virtual device: cannot start %s: %s\r\n" % (argv[0], e)).encode())
            os._exit(127)
        os.set_blocking(fd, False)
        self.interp_pid, self.interp_fd = pid, fd
        self._reset_interpreter_state(raw_repl)

    def _from_interpreter(self):
        try:
            data = os.read(self.interp_fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the interpreter has closed its end, i.e. ended
                raise
            data = b""
        if not data:
            self._interpreter_ended()
            return
        data = self._take_words(data)
        self._follow_repl_mode(data)
        if self.hiding_banner:
            data = self._hide_friendly_banner(data)
        if not self.raw_repl and not self.binary_console:
            data = self._cook(data)
        if data:
            self.last_output_byte = data[-1:]
            self._to_port(data)

    def _take_words(self, data):
        """Strip vdev.py's STARTED and RESETTING from the output and act on them."""
        data = self.partial_word + data
        if STARTED in data:
            data = data.replace(STARTED, b"")
            self.phase = "running"
        if RESETTING in data:
            data = data.replace(RESETTING, b"")
            self.phase = "resetting"
        # A word may be cut by the read: keep back a tail that could be its beginning.
        cut = data.rfind(WORD_START[:1], max(0, len(data) - len(RESETTING)))
        if cut >= 0 and (STARTED.startswith(data[cut:]) or RESETTING.startswith(data[cut:])):
            self.partial_word, data = data[cut:], data[:cut]
        else:
            self.partial_word = b""
        return data

    def _follow_repl_mode(self, data):
        seen = self.recent_output + data
        raw_at, friendly_at = seen.rfind(RAW_REPL_BANNER), seen.rfind(FRIENDLY_REPL_BANNER)
        if raw_at != friendly_at:  # both -1 when neither is there
            self.raw_repl = raw_at > friendly_at
        if self.phase == "starting" and FRIENDLY_PROMPT in seen:
            self.phase = "running"  # a prompt without STARTED: vdev.py failed early; go on
        self.recent_output = seen[-64:]

    def _hide_friendly_banner(self, data):
        """Hold output until the unix REPL's first prompt; pass on what boot.py printed, drop the
        banner and the prompt, and go on into the raw REPL as the board would have."""
        self.held_output += data
        prompt_at = self.held_output.find(FRIENDLY_PROMPT)
        if prompt_at < 0:
            return b""
        banner_at = self.held_output.rfind(UNIX_BANNER_START, 0, prompt_at)
        shown = self.held_output[:max(banner_at, 0)] + \
            self.held_output[prompt_at + len(FRIENDLY_PROMPT):]
        self.held_output.clear()
        self.hiding_banner = False
        self.to_interpreter[:0] = CTRL_A
        return bytes(shown)

    def _cook(self, data):
        """Lone LF -> CRLF, as the board's console sends print() output; otherwise `mpremote
        repl` (whose terminal does no output processing) shows a staircase."""
        cooked = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if cooked[:2] == b"\r\n" and data[:1] == b"\n" and self.last_output_byte == b"\r":
            cooked = cooked[1:]  # a CRLF split between two reads
        return cooked

    def _to_interpreter(self):
        """Pass on the pending input, turning each Ctrl-C into SIGINT if code is running."""
        pending = self.to_interpreter
        while pending:
            ctrl_c_at = pending.find(CTRL_C)
            if ctrl_c_at == 0:
                if self._interrupt():
                    del pending[:1]  # consumed, as the board's UART driver consumes it
                    continue
                chunk = pending[:1]  # at a prompt it is a character like any other
            else:
                chunk = pending[:ctrl_c_at] if ctrl_c_at > 0 else pending
            try:
                written = os.write(self.interp_fd, chunk)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                return  # it is ending; the input waits for the next one
            del pending[:written]
            if written < len(chunk):
                return

    def _interrupt(self):
        """SIGINT, and True, if the interpreter catches it; decided while it is stopped, so that it
        cannot turn the interrupt off in between (SIGINT would then end it: its default action)."""
        if not self._interpreter_runs_code():
            return False  # a byte, as the chip's driver decides on arrival: no need to stop it
        pid = self.interp_pid
        os.kill(pid, signal.SIGSTOP)
        try:
            # Stopped (or ended); WNOWAIT leaves an end to _interpreter_ended to collect.
            os.waitid(os.P_PID, pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
            catches = self._interpreter_runs_code()
            if catches:
                os.kill(pid, signal.SIGINT)  # pending until it goes on, then its handler's
            return catches
        finally:
            os.kill(pid, signal.SIGCONT)

    def _interpreter_runs_code(self):
        """Whether the interpreter catches SIGINT now, i.e. executes Python code with Ctrl-C
        enabled (the unix port installs its handler only then)."""
        try:
            with open("/proc/%d/status" % self.interp_pid) as status:
                for line in status:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
        except OSError:
            pass
        return False

    def _interpreter_ended(self):
        """The process ended where a board resets: start the next one as the board comes back.
        Status HARD_RESET_STATUS is machine.reset(), a signal is a crash, anything else is a
        soft reset (Ctrl-D, sys.exit(), machine.soft_reset())."""
        os.close(self.interp_fd)
        _, status = os.waitpid(self.interp_pid, 0)
        self.interp_fd = self.interp_pid = None
        self._to_port(self.partial_word + self.held_output)  # it ended early: show why
        if time.monotonic() - self.started_at < QUICK_EXIT_S and not self.got_input:
            self.quick_exits += 1
            if self.quick_exits >= MAX_QUICK_EXITS:
                raise DeviceError("the interpreter keeps ending as soon as it starts (exit "
                                  "status %d)" % os.waitstatus_to_exitcode(status))
        else:
            self.quick_exits = 0
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == HARD_RESET_STATUS:
            self.power_on_at = time.monotonic()
            self.start_interpreter()
        elif os.WIFEXITED(status):
            self._to_port(SOFT_REBOOT)
            self.start_interpreter(raw_repl=self.raw_repl)
        else:
            self._to_port(b"virtual device: interpreter ended by signal %d, power-on reset\r\n"
                          % os.WTERMSIG(status))
            self.power_on_at = time.monotonic()
            self.start_interpreter()

    def stop_interpreter(self):
        if self.interp_pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.interp_pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while os.waitpid(self.interp_pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.interp_pid, signal.SIGKILL)
                os.waitpid(self.interp_pid, 0)
                break
            time.sleep(0.01)
        os.close(self.interp_fd)
        self.interp_fd = self.interp_pid = None

    # -- the bridge ----------------------------------------------------------------------------

    def serve(self):
        """Bridge the port and the interpreter until a signal stops the device."""
        while True:
            readers = [self.port_fd, self.interp_fd]
            writers = [self.interp_fd] if self.to_interpreter and self.phase == "running" else []
            readable, writable, _ = select.select(readers, writers, [])
            if writable:
                self._to_interpreter()
            if self.port_fd in readable:
                self._from_port()
            if self.interp_fd in readable:
                self._from_interpreter()  # last: it may start a new interpreter

    def close(self):
        self.stop_interpreter()
        if self.port_slave_fd is not None and self.link.is_symlink() and \
                os.readlink(self.link) == os.ttyname(self.port_slave_fd):
            self.link.unlink()  # only our own link, not one another device put there since
        for fd in (self.port_fd, self.port_slave_fd):
            if fd is not None:
                os.close(fd)
        self.workdir.cleanup()


def _raise_stop(signum, frame):
    raise _Stop()


def main(args):
    """laserctl vdevice: run until SIGINT/SIGTERM; 0 on a clean stop, 2 on a setup error."""
    chip = getattr(args, "chip", False)
    try:
        _, board = vdevice.load_board(args.board)
        vdevice.sim_config(board)  # refuses a board without a plant model, before anything starts
        if chip:
            paths.chip_executable()  # built, and not older than the firmware frozen into it
    except (ValueError, OSError) as e:
        print("laserctl vdevice: %s" % e, file=sys.stderr)
        return 2
    with contextlib.ExitStack() as cleanup:
        if args.root:
            root = Path(args.root)
            if not root.exists():  # a new device: the firmware as the checkout has it
                vdevice.make_image(root, args.board, args.protocol, frozen=chip)
            elif args.protocol is not None:
                (root / "treatment.json").write_text(json.dumps(args.protocol))
            # An existing folder is the device's flash as it is, blank or deployed to.
        else:
            root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="vdev-flash-")))
            vdevice.make_image(root, args.board, args.protocol, frozen=chip)
        device = PtyDevice(args.pty, root.resolve(), board, args.ambient,
                           panel_port=getattr(args, "panel", None),
                           maintenance=getattr(args, "maintenance", False), chip=chip)
        cleanup.callback(device.close)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _raise_stop)
        try:
            device.open_port()
            device.start_interpreter()
            print("virtual device (board %s%s) on %s -> %s, flash %s; Ctrl-C to stop"
                  % (board["name"], ", reset button held: a maintenance boot"
                     if getattr(args, "maintenance", False) else "", args.pty,
                     os.ttyname(device.port_slave_fd), root), flush=True)
            device.serve()
        except _Stop:
            return 0
        except (DeviceError, FileNotFoundError) as e:  # FileNotFoundError: no micropython
            print("laserctl vdevice: %s" % e, file=sys.stderr)
            return 2
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)  # let the cleanup finish
    return 0

"""`laserctl deploy --port PORT [--board NAME] [--dry-run] [--mpy]`: put this checkout's firmware on
a device (a board, or `laserctl vdevice`) with `mpremote`.

The product's firmware is frozen into its MicroPython image (`make image`, `laserctl flash`:
docs/flashing.md); deploy copies what lives on the filesystem and checks the image's identity:

1. Build: boot.py and main.py (the board runs only those names), the board file as board.json,
   the preset library, and the integrity manifest: the SHA-256 of each of them and the build id
   of the image this checkout builds (firmware/lib/integrity.py checks both at boot).
2. Reach the REPL. A device running the firmware is asked, through a service session (PIN), to
   restart into a maintenance boot: once the firmware's watchdog runs it cannot be stopped, so
   interrupting the loop with Ctrl-C would reset the board in the middle of the copy.
3. Check the image and compare: the device reports the image frozen into it and hashes its own
   files. A device whose image this checkout did not build is refused before anything is
   written (a manifest for it would vouch for code this checkout does not hold). Only files whose
   digest differs are copied, and Python modules that are not part of this firmware are removed
   (the self-test refuses unlisted code: a module at the root would be imported before a frozen
   one, and on the --mpy path a stale lib/app.py instead of lib/app.mpy).
   The device's own data (settings, journal, treatment selection) is never touched.
4. Copy, in one mpremote session: the maintenance flag first (a reset during the copy comes back
   to the REPL), the old manifest removed (until the new one is written the device refuses to
   arm: never a half-new firmware that emits), the changed files, the removals, the new
   manifest last, the flag removed, and a reset.
5. Confirm: the firmware answers `status` with this checkout's version, image and the manifest id
   just written, and its self-test verdict is printed.

--dry-run changes nothing on the device: no service session, no restart, no clock setting, so
nothing in its journal. A device whose firmware runs tells its image, version and manifest in its
`status` reply, and its boot self-test's verdict: a dry run checks the image from that, and
reports nothing to copy when the device runs this very manifest and found every file as listed.
Which of its files differ, only a maintenance boot can show (the firmware's port carries the
protocol only): the dry run then says what a deploy would do and stops. A device already in a
maintenance boot (or a blank one) is inspected read-only and the whole plan is listed.

--mpy, the development path for a board with PSRAM running a stock MicroPython: firmware/lib goes
on the filesystem as .mpy files compiled by mpy-cross (after checking that the device reads the
.mpy version it writes), and the manifest names no image. On an ESP32 without PSRAM the firmware
does not fit the heap that way (docs/memory.md); deploy warns.

Exit status: 0 deployed (with --dry-run: planned, or stopped where only a maintenance boot would
tell more); 1 the device does not report what was deployed; 2 nothing was changed (the build, the
device's image or MicroPython, the PIN, the port).
"""

import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host_tools import device_lines, image, manifest, vdevice
from host_tools.serial_link import DeviceError, SerialLink, service_pin

MAINTENANCE_FLAG = "maintenance"  # firmware/lib/app.py's MAINTENANCE_FLAG
PROBE_TIMEOUT_S = 2.0  # a running firmware answers `status` within a few ticks
BOOT_TIMEOUT_S = 30.0
# How a `status` reply's "locked" begins when the boot self-test found the firmware's files or
# image other than its manifest lists (firmware/lib/integrity.py, check()); other reasons to lock
# (the hardware check, the settings) come after the integrity check has passed.
INTEGRITY_PROBLEMS = ("firmware ", "no firmware manifest")

MPY_WARNING = ("laserctl deploy: warning: --mpy is for development on a board with PSRAM: as .mpy "
               "files the firmware is loaded into the heap, and on an ESP32 without PSRAM it does "
               "not fit (docs/memory.md). The product runs it frozen into its image: make image, "
               "laserctl flash, then deploy without --mpy (docs/flashing.md)")

# Runs on the device (mpremote exec): its .mpy version, the firmware image frozen into it, and the
# digest of every file at the root and in lib/, as one JSON line. All of it inside a function that
# is deleted after: a dry run's REPL keeps no names of it.
_INSPECT = """
def _laserctl_inspect():
    import os, sys, json, hashlib, binascii
    buf = bytearray(512)
    view = memoryview(buf)

    def digest(path):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(view[:n])
        return binascii.hexlify(h.digest()).decode()

    files, dirs = {}, []
    for folder in ("", "lib"):
        try:
            entries = list(os.ilistdir(folder))
        except OSError:
            continue
        for e in entries:
            path = folder + "/" + e[0] if folder else e[0]
            if e[1] == 0x4000:
                dirs.append(path)
            else:
                files[path] = digest(path)
    try:
        import image_id
        image = {"version": image_id.VERSION, "build_id": image_id.BUILD_ID}
    except ImportError:
        image = None
    print(json.dumps({"mpy": getattr(sys.implementation, "_mpy", None),
                      "micropython": ".".join(str(v) for v in sys.implementation.version[:3]),
                      "image": image, "files": files, "dirs": dirs}))
try:
    _laserctl_inspect()
finally:
    del _laserctl_inspect
"""


class DeployError(Exception):
    """The deploy cannot go on; the message is for the user."""


class NotConfirmed(DeployError):
    """The files were copied, but the device does not report the firmware that was deployed."""


def _mpremote(port, *args, timeout_s=300, resume=False):
    """mpremote's output; `resume`: without the soft reset mpremote makes before its first
    command (a dry run restarts nothing, not even the REPL of a maintenance boot)."""
    argv = [sys.executable, "-m", "mpremote", "connect", port, *(["resume"] if resume else []),
            *args]
    try:
        # errors="replace": what the device prints may be any bytes (docs/serial.md)
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise DeployError("mpremote got no answer from %s within %d s (is the port right, "
                          "and no other program using it?)" % (port, timeout_s)) from e
    if proc.returncode != 0:
        raise DeployError("mpremote %s failed: %s" % (args[0], (proc.stderr or proc.stdout)
                                                      .strip()[-800:]))
    return proc.stdout


# -- compare -------------------------------------------------------------------------------------


def plan(files, device_files):
    """(to copy [(name, "new"|"changed")], to remove [name], unchanged [name]) for the built
    `files` {name: path} against the device's {name: sha256}. manifest.json is not in it: it is
    always written, last."""
    copy, unchanged = [], []
    for name, path in sorted(files.items()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if name not in device_files:
            copy.append((name, "new"))
        elif device_files[name] != digest:
            copy.append((name, "changed"))
        else:
            unchanged.append(name)
    remove = [name for name in sorted(device_files) if name.endswith((".py", ".mpy"))
              and name not in files]
    return copy, remove, unchanged


# -- the device ----------------------------------------------------------------------------------


def _status(link):
    """The firmware's `status` reply on `link`, or None if no firmware loop answers (a blank
    board, a REPL, a maintenance boot). Asks nothing that changes the device."""
    try:
        return link.call("status")
    except DeviceError as e:
        if str(e).startswith("halted: "):  # the firmware's safe halt (firmware/lib/halt.py)
            raise DeployError("the device's firmware is %s; it has no control loop to "
                              "restart itself into a maintenance boot (docs/"
                              "troubleshooting.md)" % e) from e
        return None


def probe(port):
    """The running firmware's `status` reply, or None if no firmware loop answers."""
    with SerialLink(port, timeout_s=PROBE_TIMEOUT_S) as link:
        return _status(link)


def enter_maintenance(port, pin):
    """If the firmware's loop runs on `port`, restart it into a maintenance boot; returns
    whether it did (False: the REPL is reachable already, or nothing answers the protocol)."""
    with SerialLink(port, timeout_s=PROBE_TIMEOUT_S) as link:
        status = _status(link)
        if status is None:
            return False
        link.timeout_s = 5.0
        link.call("service", pin=service_pin(pin))
        print("the firmware runs (version %s, state %s): restarting it into a maintenance boot"
              % (status.get("version"), status["state"]))
        link.call("restart", maintenance=True)
        if link.wait_event("maintenance", BOOT_TIMEOUT_S) is None:
            raise DeployError("the device did not come back in a maintenance boot within %d s; "
                              "hold its reset button through a reset and deploy again"
                              % BOOT_TIMEOUT_S)
    return True


def inspect(port, resume=False):
    """What the device has: {"mpy", "micropython", "image": {"version", "build_id"} or None,
    "files": {name: sha256}, "dirs"}. `resume`: without mpremote's soft reset first."""
    out = _mpremote(port, "exec", _INSPECT, resume=resume)
    for line in reversed(out.splitlines()):
        found = device_lines.parse(line) if line.startswith("{") else None
        if isinstance(found, dict) and isinstance(found.get("files"), dict):
            return found
    raise DeployError("the device did not list its files: %r" % out[-400:])


def copy(port, out_dir, to_copy, to_remove, device):
    """One mpremote session: flag, old manifest out, files, removals, manifest, flag out, reset."""
    args = ["fs", "touch", ":" + MAINTENANCE_FLAG]
    if manifest.MANIFEST_NAME in device["files"]:
        args += ["+", "fs", "rm", ":" + manifest.MANIFEST_NAME]
    if "lib" not in device["dirs"] and any(n.startswith("lib/") for n, _ in to_copy):
        args += ["+", "fs", "mkdir", ":lib"]
    for name, _ in to_copy:
        args += ["+", "fs", "cp", "-f", str(out_dir / name), ":" + name]
    for name in to_remove:
        args += ["+", "fs", "rm", ":" + name]
    args += ["+", "fs", "cp", "-f", str(out_dir / manifest.MANIFEST_NAME),
             ":" + manifest.MANIFEST_NAME, "+", "fs", "rm", ":" + MAINTENANCE_FLAG, "+", "reset"]
    _mpremote(port, *args)


def check_board(port, device, to_copy, out_dir, resume=False):
    """Raise DeployError if the deploy would put another board (by name) in place of the one a
    calibrated device has: its settings.json (calibration, limits) were measured on that board's
    diode and pins. A changed file of the same board passes. `resume`: as for inspect."""
    if "settings.json" not in device["files"] or ("board.json", "changed") not in to_copy:
        return
    new = json.loads((out_dir / "board.json").read_text())["name"]
    try:
        current = json.loads(_mpremote(port, "fs", "cat", ":board.json", resume=resume)).get(
            "name")
    except (ValueError, AttributeError):
        current = None  # unreadable: not the same board as far as anyone can tell
    if current != new:
        raise DeployError("the device has board %r and its own calibration (settings.json); this "
                          "deploy would put board %r in its place. Check BOARD= (the virtual "
                          "device is BOARD=sim), or give --replace-board (make deploy "
                          "REPLACE_BOARD=1) to replace it" % (current, new))


def mpy_version_of(mpy):
    """(major, minor) from MicroPython's sys.implementation._mpy."""
    return mpy & 0xFF, mpy >> 8 & 3


def check_device(device, image_id, mpy):
    """Print what the device runs; raise DeployError unless it can take this deploy: the image
    this checkout builds (`image_id`), or for --mpy a stock MicroPython reading mpy-cross's .mpy
    version."""
    running = device.get("image")
    print("device: MicroPython %s, %s" % (device["micropython"], "no firmware image (a stock "
          "MicroPython)" if running is None else "firmware image %s (version %s)"
          % (running["build_id"], running["version"])))
    check_image(running, image_id, mpy)
    if not mpy:
        return
    if device["mpy"] is None:
        raise DeployError("the device's MicroPython does not say which .mpy files it reads (no "
                          "sys.implementation._mpy)")
    wanted, found = manifest.mpy_cross_version(), mpy_version_of(device["mpy"])
    print("device reads .mpy v%d.%d; mpy-cross writes v%d.%d" % (*found, *wanted))
    if found != wanted:
        raise DeployError("this mpy-cross writes .mpy v%d.%d, the device reads v%d.%d: flash a "
                          "MicroPython that reads v%d.%d (docs/flashing.md)"
                          % (*wanted, *found, *wanted))


def check_image(running, image_id, mpy):
    """Raise DeployError unless the firmware image the device runs (`running`: {"build_id",
    "version"} or None, a stock MicroPython) can take this deploy: the one this checkout builds
    (`image_id`), or none for --mpy."""
    if not mpy:
        if running is None:
            raise DeployError("the device's MicroPython has no firmware frozen in: flash this "
                              "checkout's image first (make image, then laserctl flash; docs/"
                              "flashing.md). A board with PSRAM may take the firmware as .mpy "
                              "files instead, for development: --mpy")
        if running["build_id"] != image_id:
            raise DeployError("the device runs firmware image %s (version %s), this checkout "
                              "builds image %s (version %s): flash this checkout's image (make "
                              "image, then laserctl flash; docs/flashing.md), or deploy from the "
                              "checkout that built the device's image"
                              % (running["build_id"], running["version"], image_id,
                                 manifest.firmware_version()))
        return
    if running is not None:
        raise DeployError("--mpy: the device runs firmware image %s, whose frozen modules come "
                          "before /lib: the .mpy files would not run. Deploy without --mpy"
                          % running["build_id"])


def leave_as_found(port, in_maintenance):
    """Back to its firmware, if deploy had restarted the device into a maintenance boot."""
    if in_maintenance:
        _mpremote(port, "fs", "rm", ":" + MAINTENANCE_FLAG, "+", "reset")


def confirm(port, version, manifest_id, image_id=None):
    """Wait for the new firmware; returns its status, or raises DeployError if it does not
    report this version, image and manifest."""
    with SerialLink(port) as link:
        try:
            status = link.wait_ready(BOOT_TIMEOUT_S)
        except DeviceError as e:
            raise NotConfirmed("the deployed firmware does not answer: %s" % e) from e
        clock = link.sync_clock()
        if clock:
            print(clock)
    reported = (status.get("version"), status.get("image"), status.get("manifest"))
    if reported != (version, image_id, manifest_id):
        raise NotConfirmed("the device reports firmware %s, image %s, manifest %s; deployed %s, "
                           "image %s, manifest %s" % (reported[0], reported[1] or "none",
                                                      reported[2], version, image_id or "none",
                                                      manifest_id))
    return status


# -- the command ---------------------------------------------------------------------------------


def print_plan(to_copy, to_remove, unchanged, changed, verb=""):
    """The plan, one line a file; `verb`: "would " for a dry run."""
    for name, why in to_copy:
        print("%scopy   %s (%s)" % (verb, name, why))
    for name in to_remove:
        print("%sremove %s (not part of this firmware)" % (verb, name))
    if changed:
        print("%swrite  %s (last)" % (verb, manifest.MANIFEST_NAME))
    print("%d files unchanged" % len(unchanged))


def compare(port, files, out_dir, manifest_sha, image_id, mpy, replace_board, resume=False):
    """Inspect the device at its REPL, check that it can take this deploy, plan: (device,
    to_copy, to_remove, unchanged, changed). DeployError, nothing written, if it cannot."""
    device = inspect(port, resume=resume)
    check_device(device, image_id, mpy)
    to_copy, to_remove, unchanged = plan(files, device["files"])
    if not replace_board:
        check_board(port, device, to_copy, out_dir, resume=resume)
    changed = bool(to_copy or to_remove) or \
        device["files"].get(manifest.MANIFEST_NAME) != manifest_sha
    return device, to_copy, to_remove, unchanged, changed


def dry_run(port, files, out_dir, manifest_sha, image_id, mpy, replace_board):
    """--dry-run: what a deploy would do, with the device left exactly as it was: no service
    session, no restart (not even mpremote's soft reset), no clock setting, so nothing in its
    journal. Returns the exit status; DeployError where the deploy would refuse."""
    status = probe(port)
    if status is None:  # its REPL answers (a maintenance boot, a blank board): read-only
        *_, to_copy, to_remove, unchanged, changed = compare(
            port, files, out_dir, manifest_sha, image_id, mpy, replace_board, resume=True)
        print_plan(to_copy, to_remove, unchanged, changed, "would ")
        print("dry run: nothing was changed on the device")
        return 0
    # The firmware runs: its port carries the protocol only, and its status is all there is.
    print("the firmware runs (version %s, state %s): a dry run leaves it running"
          % (status.get("version"), status.get("state")))
    running = status.get("image")
    print("device: %s" % ("no firmware image (a stock MicroPython)" if running is None else
                          "firmware image %s (version %s)" % (running, status.get("version"))))
    check_image(None if running is None else {"build_id": running,
                                              "version": status.get("version")}, image_id, mpy)
    manifest_id = manifest_sha[:16]  # what the firmware reports (integrity.manifest_id)
    locked = status.get("locked")
    altered = isinstance(locked, str) and locked.startswith(INTEGRITY_PROBLEMS)
    if status.get("manifest") == manifest_id and not altered:
        print("the device runs this deploy's manifest %s, and its boot self-test found every "
              "file as listed" % manifest_id)
        print("dry run: a deploy would copy nothing; nothing was changed on the device")
        return 0
    print("the device's manifest is %s; this deploy writes manifest %s"
          % (status.get("manifest") or "none", manifest_id))
    if altered:
        print("its boot self-test found: %s" % locked)
    print("dry run: stopped here; nothing was changed on the device")
    print("  which files differ%s only a maintenance boot shows, and a dry run restarts nothing"
          % (" (and which .mpy version the device reads)" if mpy else ""))
    print("  a deploy opens a service session (the PIN), restarts the device into a maintenance "
          "boot, copies what differs, writes %s last and resets it: its journal records the "
          "session, the restart and the boot" % manifest.MANIFEST_NAME)
    print("  to see the whole plan first: hold the reset button through a reset (a maintenance "
          "boot), then run the dry run again")
    return 0


def main(args):
    started = time.monotonic()
    mpy = getattr(args, "mpy", False)
    replace_board = getattr(args, "replace_board", False)
    try:
        vdevice.load_board(args.board)
        if mpy:
            print(MPY_WARNING, file=sys.stderr)
        image_id = None if mpy else image.build_id()
        with tempfile.TemporaryDirectory(prefix="laserctl-deploy-") as tmp:
            out_dir = Path(tmp)
            files = manifest.build(args.board, out_dir, frozen=not mpy, compile_modules=True)
            manifest_text = json.dumps(manifest.manifest(files, image_id), indent=1) + "\n"
            (out_dir / manifest.MANIFEST_NAME).write_text(manifest_text)
            manifest_sha = hashlib.sha256(manifest_text.encode()).hexdigest()
            manifest_id = manifest_sha[:16]  # what the firmware reports (integrity.manifest_id)
            if args.dry_run:
                return dry_run(args.port, files, out_dir, manifest_sha, image_id, mpy,
                               replace_board)
            in_maintenance = enter_maintenance(args.port, args.pin)
            try:
                device, to_copy, to_remove, unchanged, changed = compare(
                    args.port, files, out_dir, manifest_sha, image_id, mpy, replace_board)
            except DeployError:
                leave_as_found(args.port, in_maintenance)  # nothing written: it runs as before
                raise
            print_plan(to_copy, to_remove, unchanged, changed)
            if not changed:
                print("the device has this firmware already: nothing to copy")
                flag = MAINTENANCE_FLAG in device["files"]  # ours, or left from before
                _mpremote(args.port, *(["fs", "rm", ":" + MAINTENANCE_FLAG, "+"] if flag else []),
                          "reset")
            else:
                copy(args.port, out_dir, to_copy, to_remove, device)
        status = confirm(args.port, manifest.firmware_version(), manifest_id, image_id)
    except NotConfirmed as e:
        print("laserctl deploy: %s" % e, file=sys.stderr)
        return 1
    except (DeployError, DeviceError, ValueError, FileNotFoundError, manifest.BuildError) as e:
        print("laserctl deploy: %s" % e, file=sys.stderr)
        return 2
    print("deployed in %.0f s: the device reports firmware %s, image %s, manifest %s"
          % (time.monotonic() - started, status["version"], status["image"] or "none",
             status["manifest"]))
    print("self-test: %s" % ("ok" if status["locked"] is None else
                             "emission locked: %s" % status["locked"]))
    return 0

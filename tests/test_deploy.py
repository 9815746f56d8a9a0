"""`laserctl deploy` against the virtual device, with the real mpremote.

The product's path: a device whose MicroPython has the firmware frozen in (the chip-shaped
interpreter, built from this checkout with its image identity) takes only the filesystem files,
and refuses to arm under a manifest that names another image. The development path (--mpy, with
the real mpy-cross): the 64-bit virtual device, a stock MicroPython, takes the modules as .mpy
files; deploy, tamper with a file over mpremote, see the device refuse to arm naming the file,
see a dry run find exactly that file, deploy again. Also the refusals that must leave the device
untouched."""

import hashlib
import json
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from vdevice_rig import REPO, Device

from host_tools import deploy, image, manifest, paths, vdevice
from host_tools.serial_link import DeviceError, SerialLink

FIRMWARE_VERSION = manifest.firmware_version()
IMAGE = image.build_id()  # what this checkout builds, and make chip froze into the chip binary
# The modules a stock MicroPython gets: firmware/lib's and the micropython-lib driver they use.
MODULES = sorted(name[len("lib/"):-len(".py")] for name in manifest.deploy_files("sim")
                 if name.startswith("lib/"))
DEVICE_DATA = ("settings.json", "treatment.json")  # the device's own: a deploy never touches them
FILESYSTEM = ["board.json", "boot.py", "main.py", "manifest.json", "protocols.json"]

def laserctl_deploy(port, *extra, pin="000000"):
    return subprocess.run([sys.executable, "-m", "host_tools.cli", "deploy", "--port", port,
                           "--board", "sim", "--pin", pin, *extra], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


class ChipDevice(Device):
    """`laserctl vdevice --chip --pty PORT --root ROOT`: the chip-shaped interpreter, its image
    with the firmware frozen in, with this checkout's identity (make chip)."""

    def __init__(self, tmp_path, root):
        self.port = str(tmp_path / "ttyC")
        argv = [sys.executable, "-m", "host_tools.cli", "vdevice", "--chip", "--pty", self.port,
                "--root", str(root)]
        self.log_path = tmp_path / "chip-device.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def start_chip_device(tmp_path):
    """Start virtual devices on the chip-shaped interpreter; each is stopped when the test ends."""
    frozen = subprocess.run([paths.chip_executable(), "-c", "import image_id; "
                             "print(image_id.BUILD_ID)"], capture_output=True, text=True,
                            env={"MICROPYPATH": ".frozen"}, timeout=30).stdout.strip()
    assert frozen == IMAGE, "build/chip/micropython froze image %s, this checkout builds %s: " \
        "run make chip" % (frozen, IMAGE)
    started = []

    def start(root):
        started.append(ChipDevice(tmp_path, root))
        started[-1].wait_for_port()
        return started[-1]

    yield start
    for dev in started:
        dev.stop()


def files_of(flash):
    """Every file on the device's flash but the journal (which records the service visits) and
    the boot count (which counts the boots)."""
    return {str(p.relative_to(flash)): p.read_bytes() for p in sorted(flash.rglob("*"))
            if p.is_file() and not p.name.startswith("journal.") and p.name != "boot_count"}


def everything(flash):
    """Every file on the device's flash, the journal and the boot count too: what a dry run must
    leave as it found it (a service session, a restart or a clock setting writes records; a boot
    counts)."""
    return {str(p.relative_to(flash)): p.read_bytes() for p in sorted(flash.rglob("*"))
            if p.is_file()}


def journal_records(flash):
    return (flash / "journal.log").read_text().splitlines()


def status(port):
    with SerialLink(port) as link:
        return link.wait_ready()


def arm(port):
    with SerialLink(port) as link:
        link.wait_ready()
        return link.request("arm")


@pytest.fixture
def flash(tmp_path):
    """A device as `laserctl vdevice` makes it: the firmware as source, calibrated, running."""
    return tmp_path / "flash"


def boot_records(flash):
    """The boot records of the device's journal (each line: its hash, a space, the record)."""
    lines = (flash / "journal.log").read_text().splitlines()
    records = [json.loads(line.split(" ", 1)[1]) for line in lines]
    return [r for r in records if r["ev"] == "boot"]


def test_frozen_deploy_copies_only_the_filesystem_files(start_chip_device, tmp_path):
    # A board that ran the .mpy path, then flashed with this checkout's image: its old modules
    # are still on the flash (never imported: the frozen ones come first), and its manifest names
    # no image, so it does not arm.
    flash = tmp_path / "chip-flash"
    vdevice.make_image(flash, "sim")
    dev = start_chip_device(flash)
    found = status(dev.port)
    assert (found["version"], found["image"]) == (FIRMWARE_VERSION, IMAGE)
    assert found["locked"] == "firmware image not in the manifest: the device runs image %s, " \
        "the manifest is for firmware files" % IMAGE
    with SerialLink(dev.port) as link:
        link.wait_ready()
        link.call("select", protocol="knee")
    data = {name: (flash / name).read_bytes() for name in DEVICE_DATA}

    done = laserctl_deploy(dev.port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "device: MicroPython 1.28.0, firmware image %s (version %s)" % (
        IMAGE, FIRMWARE_VERSION) in done.stdout
    assert deploy.MPY_WARNING not in done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if line.startswith("copy")] == []  # the same four files
    assert [line for line in lines if line.startswith("remove")] == [
        "remove lib/%s.py (not part of this firmware)" % m for m in MODULES]
    assert list((flash / "lib").iterdir()) == []
    assert sorted(p.name for p in flash.iterdir() if p.is_file()) == sorted(
        FILESYSTEM + list(DEVICE_DATA) + ["journal.log", "boot_count"])
    deployed = json.loads((flash / "manifest.json").read_text())
    assert (deployed["version"], deployed["image"]) == (FIRMWARE_VERSION, IMAGE)
    assert sorted(deployed["files"]) == [name for name in FILESYSTEM if name != "manifest.json"]
    manifest_id = hashlib.sha256((flash / "manifest.json").read_bytes()).hexdigest()[:16]
    assert "the device reports firmware %s, image %s, manifest %s" % (
        FIRMWARE_VERSION, IMAGE, manifest_id) in done.stdout
    assert "self-test: ok" in done.stdout
    reported = status(dev.port)
    assert (reported["image"], reported["manifest"], reported["locked"]) == \
        (IMAGE, manifest_id, None)
    assert {name: (flash / name).read_bytes() for name in DEVICE_DATA} == data
    last_boot = boot_records(flash)[-1]
    assert (last_boot["version"], last_boot["image"]) == (FIRMWARE_VERSION, IMAGE)
    assert "selftest" not in last_boot
    # Now a dry run needs no maintenance boot: the device runs this very image and manifest.
    untouched = everything(flash)
    dry = laserctl_deploy(dev.port, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "device: firmware image %s (version %s)" % (IMAGE, FIRMWARE_VERSION) in dry.stdout
    assert "dry run: a deploy would copy nothing; nothing was changed on the device" in dry.stdout
    assert everything(flash) == untouched


def test_a_device_running_another_image_than_its_manifest_names_refuses_to_arm(
        start_chip_device, tmp_path):
    # The flash as a deploy for another image left it (then the chip was flashed with this one).
    flash = tmp_path / "chip-flash"
    flash.mkdir()
    files = manifest.deploy_files("sim", frozen=True)
    for name, source in files.items():
        shutil.copy(source, flash / name)
    (flash / "manifest.json").write_text(json.dumps(manifest.manifest(files, "0123456789abcdef")))
    (flash / "settings.json").write_bytes(vdevice.factory_settings(vdevice.load_board("sim")[1]))
    dev = start_chip_device(flash)
    why = "firmware image differs: the device runs image %s, the manifest names image " \
        "0123456789abcdef" % IMAGE
    assert status(dev.port)["locked"] == why
    refused = arm(dev.port)
    assert (refused["ok"], refused["error"]) == (False, "arm refused: " + why)
    last_boot = boot_records(flash)[-1]
    assert (last_boot["image"], last_boot["selftest"]) == (IMAGE, why)

    # A deploy from this checkout (which builds the image the device runs) writes its manifest.
    done = laserctl_deploy(dev.port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line for line in done.stdout.splitlines() if line.startswith(("copy", "remove",
                                                                          "write"))] == [
        "write  manifest.json (last)"]
    assert status(dev.port)["locked"] is None


def test_deploy_refuses_an_image_the_checkout_did_not_build_and_mpy_on_an_image(
        start_chip_device, tmp_path, monkeypatch, capsys):
    flash = tmp_path / "chip-flash"
    vdevice.make_image(flash, "sim")
    dev = start_chip_device(flash)
    before = files_of(flash)

    monkeypatch.setattr(image, "build_id", lambda: "f" * 16)  # another checkout
    code = deploy.main(Namespace(port=dev.port, board="sim", pin="000000", dry_run=False,
                                 mpy=False))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "laserctl deploy: the device runs firmware image %s (version %s), this checkout " \
        "builds image ffffffffffffffff" % (IMAGE, FIRMWARE_VERSION) in err
    assert files_of(flash) == before  # nothing written, not even the maintenance flag left
    assert status(dev.port)["state"] == "STANDBY"  # back to its firmware
    monkeypatch.undo()

    # The .mpy files would never run on it: the frozen modules come first on sys.path.
    result = laserctl_deploy(dev.port, "--mpy")
    assert result.returncode == 2, result.stdout + result.stderr
    assert deploy.MPY_WARNING in result.stderr
    assert "laserctl deploy: --mpy: the device runs firmware image %s, whose frozen modules " \
        "come before /lib" % IMAGE in result.stderr
    assert files_of(flash) == before
    assert status(dev.port)["state"] == "STANDBY"


def test_deploy_then_tamper_then_refusal_then_redeploy(start_device, flash):  # noqa: F811
    dev = start_device(root=flash)
    with SerialLink(dev.port) as link:
        link.wait_ready()
        link.call("select", protocol="knee")  # the device's own data, kept across a deploy
    before = files_of(flash)

    # A stock MicroPython has no firmware frozen in: the product's deploy refuses it, and leaves
    # it running its firmware.
    refused = laserctl_deploy(dev.port)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert ", no firmware image (a stock MicroPython)" in refused.stdout
    assert "laserctl deploy: the device's MicroPython has no firmware frozen in: flash this " \
        "checkout's image first" in refused.stderr
    assert files_of(flash) == before
    assert status(dev.port)["state"] == "STANDBY"

    # A dry run on the running firmware: no service session, no restart, no clock: not a byte
    # of the flash changes, the journal least of all. Which files differ it cannot tell (only a
    # maintenance boot shows them), and it says so.
    untouched, records = everything(flash), journal_records(flash)
    dry = laserctl_deploy(dev.port, "--dry-run", "--mpy", pin="no PIN needed")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert deploy.MPY_WARNING in dry.stderr
    assert "the firmware runs (version %s, state STANDBY): a dry run leaves it running" % (
        FIRMWARE_VERSION) in dry.stdout
    assert "restarting" not in dry.stdout and "would copy" not in dry.stdout
    assert "dry run: stopped here; nothing was changed on the device" in dry.stdout
    assert "only a maintenance boot shows" in dry.stdout
    assert journal_records(flash) == records
    assert everything(flash) == untouched
    assert status(dev.port)["state"] == "STANDBY"

    done = laserctl_deploy(dev.port, "--mpy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert deploy.MPY_WARNING in done.stderr
    assert sorted(p.name for p in (flash / "lib").iterdir()) == [m + ".mpy" for m in MODULES]
    deployed = json.loads((flash / "manifest.json").read_text())
    assert (deployed["version"], deployed["image"]) == (FIRMWARE_VERSION, None)
    for name, digest in deployed["files"].items():
        assert hashlib.sha256((flash / name).read_bytes()).hexdigest() == digest, name
    for name in DEVICE_DATA:
        assert (flash / name).read_bytes() == before[name], name
    assert not (flash / "maintenance").exists()
    manifest_id = hashlib.sha256((flash / "manifest.json").read_bytes()).hexdigest()[:16]
    assert "the device reports firmware %s, image none, manifest %s" % (
        FIRMWARE_VERSION, manifest_id) in done.stdout
    assert "self-test: ok" in done.stdout
    reported = status(dev.port)
    assert (reported["version"], reported["image"], reported["manifest"], reported["locked"]) \
        == (FIRMWARE_VERSION, None, manifest_id, None)
    # The device runs this very manifest and its self-test passed: nothing to copy, and the
    # dry run can say so without a maintenance boot.
    untouched = everything(flash)
    dry = laserctl_deploy(dev.port, "--dry-run", "--mpy")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "the device runs this deploy's manifest %s" % manifest_id in dry.stdout
    assert "dry run: a deploy would copy nothing; nothing was changed on the device" in dry.stdout
    assert everything(flash) == untouched

    # One byte appended to a module over mpremote (the REPL: a maintenance boot, through the
    # service PIN), as a careless or malicious hand with the PIN would.
    assert deploy.enter_maintenance(dev.port, "000000")
    dev.mpremote("exec", "f = open('lib/dose.mpy', 'ab'); f.write(b'\\x00'); f.close()",
                 "+", "fs", "rm", ":maintenance", "+", "reset")
    assert status(dev.port)["locked"] == "firmware file altered: lib/dose.mpy"
    refused = arm(dev.port)
    assert refused["ok"] is False
    assert refused["error"] == "arm refused: firmware file altered: lib/dose.mpy"

    # Running, the firmware's self-test names the file; the dry run passes that on and stops.
    untouched = everything(flash)
    dry = laserctl_deploy(dev.port, "--dry-run", "--mpy")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "its boot self-test found: firmware file altered: lib/dose.mpy" in dry.stdout
    assert "dry run: stopped here; nothing was changed on the device" in dry.stdout
    assert everything(flash) == untouched
    # In a maintenance boot (the REPL), a dry run reads the digests without a soft reset and
    # finds exactly that file; the device stays in its maintenance boot, its flash as it was.
    assert deploy.enter_maintenance(dev.port, "000000")
    untouched = everything(flash)
    dry = laserctl_deploy(dev.port, "--dry-run", "--mpy")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert [line for line in dry.stdout.splitlines() if line.startswith("would ")] == [
        "would copy   lib/dose.mpy (changed)", "would write  manifest.json (last)"]
    assert "dry run: nothing was changed on the device" in dry.stdout
    assert everything(flash) == untouched
    assert deploy.probe(dev.port) is None  # still at its REPL
    done = laserctl_deploy(dev.port, "--mpy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "self-test: ok" in done.stdout
    assert status(dev.port)["locked"] is None

    # Left in a maintenance boot (by hand, or a deploy cut short): deploy brings it back.
    assert deploy.enter_maintenance(dev.port, "000000")
    done = laserctl_deploy(dev.port, "--mpy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the device has this firmware already: nothing to copy" in done.stdout
    assert not (flash / "maintenance").exists() and status(dev.port)["locked"] is None


def test_one_tool_at_a_time_on_a_port(start_device):  # noqa: F811
    dev = start_device()
    with SerialLink(dev.port), pytest.raises(DeviceError, match="cannot open"):
        SerialLink(dev.port)  # e.g. a console left open while deploying


def test_a_wrong_pin_changes_nothing_and_the_firmware_keeps_running(start_device, flash):  # noqa: F811
    dev = start_device(root=flash)
    before = files_of(flash)
    result = laserctl_deploy(dev.port, pin="9999")
    assert result.returncode == 2
    assert "laserctl deploy: service: wrong PIN" in result.stderr
    assert files_of(flash) == before
    assert status(dev.port)["state"] == "STANDBY"


def test_a_device_reading_another_mpy_version_is_refused_before_any_copy(monkeypatch, capsys):
    assert deploy.mpy_version_of(2822) == (6, 3)  # MicroPython 1.29 on x64: v6.3, arch 2
    copied = []
    monkeypatch.setattr(deploy, "enter_maintenance", lambda port, pin: False)
    monkeypatch.setattr(deploy, "inspect", lambda port, resume=False: {
        "mpy": 6 | 2 << 8 | 10 << 10, "micropython": "1.22.2", "image": None, "files": {},
        "dirs": []})
    monkeypatch.setattr(deploy, "copy", lambda *args: copied.append(args))
    status_code = deploy.main(Namespace(port="unused", board="sim", pin=None, dry_run=False,
                                        mpy=True))
    assert status_code == 2 and copied == []
    err = capsys.readouterr().err
    assert "this mpy-cross writes .mpy v6.3, the device reads v6.2" in err


def test_an_unknown_board_or_port_is_refused_with_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "host_tools.cli", "deploy", "--port",
                             str(tmp_path / "nope"), "--board", "no-such-board"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown board 'no-such-board'" in result.stderr
    result = subprocess.run([sys.executable, "-m", "host_tools.cli", "deploy", "--port",
                             str(tmp_path / "nope"), "--board", "sim"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "cannot open" in result.stderr


def test_a_device_not_reporting_the_deployed_manifest_is_not_confirmed(start_device):  # noqa: F811
    dev = start_device()
    assert status(dev.port)["manifest"] is not None
    with pytest.raises(deploy.NotConfirmed, match="manifest"):
        deploy.confirm(dev.port, FIRMWARE_VERSION, "0" * 16)
    reported = status(dev.port)["manifest"]
    with pytest.raises(deploy.NotConfirmed, match="image none, manifest %s; deployed %s, image "
                       "%s" % (reported, FIRMWARE_VERSION, IMAGE)):
        deploy.confirm(dev.port, FIRMWARE_VERSION, reported, IMAGE)


def test_make_deploy_takes_the_pin_in_the_environment_not_on_the_command_line():
    stamp = Path(sys.prefix) / ".installed-stamp"  # -o: never reinstall the tools from a test
    out = subprocess.run(["make", "-n", "-o", str(stamp), "deploy", "PORT=/dev/ttyV",
                          "BOARD=sim", "PIN=4321"], cwd=REPO, text=True, capture_output=True,
                         check=True).stdout
    assert "LASERCTL_PIN='4321' " in out and "--pin" not in out
    usage = subprocess.run(["make", "-o", str(stamp), "deploy"], cwd=REPO, text=True,
                           capture_output=True)
    assert usage.returncode == 2 and "[PIN=...]" in usage.stdout


def test_another_board_over_a_calibrated_device_is_refused_unless_asked(start_chip_device,
                                                                      tmp_path):
    """Forgetting BOARD=sim: the device's calibration (settings.json) belongs to its board."""
    flash = tmp_path / "chip-flash"
    vdevice.make_image(flash, "sim")  # a calibrated device on the sim board
    dev = start_chip_device(flash)
    before = files_of(flash)
    refused = subprocess.run([sys.executable, "-m", "host_tools.cli", "deploy", "--port",
                              dev.port, "--board", "sim-devkitc", "--pin", "000000"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "the device has board 'sim' and its own calibration (settings.json); this deploy " \
        "would put board 'sim-devkitc' in its place" in refused.stderr
    assert files_of(flash) == before  # nothing written
    assert status(dev.port)["state"] == "STANDBY"  # and it runs as before
    # Which board the device has, only its REPL tells (a dry run restarts nothing): in a
    # maintenance boot, a dry run refuses the other board too, unless asked.
    assert deploy.enter_maintenance(dev.port, "000000")
    refused = subprocess.run([sys.executable, "-m", "host_tools.cli", "deploy", "--port",
                              dev.port, "--board", "sim-devkitc", "--dry-run"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "the device has board 'sim' and its own calibration" in refused.stderr
    asked = subprocess.run([sys.executable, "-m", "host_tools.cli", "deploy", "--port", dev.port,
                            "--board", "sim-devkitc", "--replace-board", "--dry-run"], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert "would copy   board.json (changed)" in asked.stdout


def test_a_preset_a_lowered_limit_forbids_is_not_called_selected(start_chip_device, tmp_path):
    """The service lowered limits.max_power_w below the selected preset's power: after the boot
    status names no selection (arming would say nothing is selected)."""
    flash = tmp_path / "chip-flash"
    board = vdevice.make_image(flash, "sim", {"protocol": "knee"})
    (flash / "settings.json").write_bytes(vdevice.factory_settings(board, {"max_power_w": 5.0}))
    dev = start_chip_device(flash)
    found = status(dev.port)
    assert found["selected"] is None and found["target_j"] is None
    # (the error line's words: tests/firmware/test_app.py, on both interpreters)

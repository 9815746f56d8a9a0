"""`laserctl flash` (host_tools/flash.py): the esptool command docs/flashing.md shows, the refusals
that write nothing (no esptool, no image, not an ESP32 image), and esptool 5.6.0 taking the
command's syntax when the flash extra is installed. No board is flashed here."""

import importlib.util
import json
import re
import subprocess
import sys
from argparse import Namespace

import pytest

from host_tools import flash, image, paths

DOC = paths.REPO / "docs" / "flashing.md"


def _args(image_path, **extra):
    values = {"port": "/dev/ttyUSB0", "image": str(image_path), "baud": flash.DEFAULT_BAUD,
              "erase": False, "dry_run": True}
    values.update(extra)
    return Namespace(**values)


def _an_image(folder, build_id=None):
    path = folder / "firmware.bin"
    path.write_bytes(b"\xe9" + bytes(255))
    if build_id is not None:
        (folder / "image_id.json").write_text(json.dumps({"version": "0.2.0",
                                                          "build_id": build_id}))
    return path


def test_the_esptool_command_is_the_one_docs_flashing_shows():
    argv = flash.esptool_argv("/dev/ttyUSB0", "build/image/firmware.bin")
    assert argv[0] == sys.executable
    shown = ".venv/bin/python " + " ".join(argv[1:])
    assert shown == ".venv/bin/python -m esptool --chip esp32 --port /dev/ttyUSB0 --baud 460800 " \
        "write-flash 0x1000 build/image/firmware.bin"
    assert shown in DOC.read_text()
    erase = flash.esptool_argv("/dev/ttyUSB0", "f.bin", erase=True)
    assert erase[-4:] == ["write-flash", "--erase-all", "0x1000", "f.bin"]


def test_without_the_flash_extra_nothing_is_written(tmp_path, monkeypatch, capsys):
    path = _an_image(tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "esptool" else real(name, *a))
    assert flash.main(_args(path, dry_run=False)) == 2
    assert "laserctl flash: esptool is not installed: it is the `flash` extra, pip install -e " \
        "'.[flash]' (esptool 5.6.0" in capsys.readouterr().err


@pytest.fixture
def esptool_installed(monkeypatch):
    """As if the flash extra were installed (a dry run never starts esptool)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "esptool" else real(name, *a))


def test_what_is_not_an_esp32_image_is_refused(tmp_path, capsys, esptool_installed):
    assert flash.main(_args(tmp_path / "missing.bin")) == 2
    assert "cannot read the image %s" % (tmp_path / "missing.bin") in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert flash.main(_args(tmp_path / "notes.txt")) == 2
    assert "is not an ESP32 firmware image (its first byte is 0x68, an image starts with 0xE9)" \
        in capsys.readouterr().err


def test_the_image_identity_is_shown_and_another_checkouts_is_warned(tmp_path, capsys,
                                                                     esptool_installed):
    path = _an_image(tmp_path, image.build_id())
    assert flash.main(_args(path)) == 0
    out = capsys.readouterr()
    assert "firmware 0.2.0, image %s" % image.build_id() in out.out
    assert "write-flash 0x1000 %s" % path in out.out and "warning" not in out.err
    path = _an_image(tmp_path, "f" * 16)
    assert flash.main(_args(path)) == 0
    assert "this checkout builds image %s; `laserctl deploy` from it will refuse the device" \
        % image.build_id() in capsys.readouterr().err


def test_esptool_takes_the_command(tmp_path):
    """esptool 5.6.0 parses the command and gets as far as the port (which does not exist). Only
    with the flash extra installed (`pip install -e '.[flash]'`)."""
    pytest.importorskip("esptool")
    path = _an_image(tmp_path)
    result = subprocess.run(flash.esptool_argv(tmp_path / "no-such-port", path), text=True,
                            capture_output=True, timeout=60)
    said = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Could not open %s" % (tmp_path / "no-such-port") in said
    assert not re.search(r"No such option|Usage:|Deprecated", said), said

# The boot self-test's integrity check (firmware/lib/integrity.py) on a small device folder: every
# file the manifest lists must be there with its SHA-256. Runs on CPython and MicroPython.
import json
import os

import integrity
from support import scratch

_ROOT = scratch("laser_test_integrity/")
_ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2


def _device(files, manifest=True):
    # try/except, not contextlib.suppress: MicroPython has no contextlib.
    for name in ("lib/a.py", "lib/a.mpy", "c.py", "b.json", "manifest.json"):
        try:  # noqa: SIM105
            os.remove(_ROOT + name)
        except OSError:
            pass
    for folder in (_ROOT, _ROOT + "lib"):
        try:  # noqa: SIM105
            os.mkdir(folder)
        except OSError:
            pass
    digests = {}
    for name, data in files.items():
        with open(_ROOT + name, "wb") as f:
            f.write(data)
        digests[name] = integrity.file_sha256(_ROOT + name)
    if manifest:
        with open(_ROOT + "manifest.json", "w") as f:
            json.dump({"version": "test", "files": digests}, f)
    return _ROOT + "manifest.json"


def test_file_sha256_is_the_standard_digest():
    _device({"b.json": b"abc"})
    assert integrity.file_sha256(_ROOT + "b.json") == _ABC_SHA256
    big = bytes(range(256)) * 9  # several chunks, the last one partial
    _device({"b.json": big})
    assert integrity.file_sha256(_ROOT + "b.json") == integrity.file_sha256(_ROOT + "b.json",
                                                                              bytearray(100))


def test_a_deployment_that_matches_its_manifest_passes():
    path = _device({"lib/a.py": b"x = 1\n", "b.json": b"{}"})
    assert integrity.check(path, _ROOT) is None
    assert integrity.manifest_id(path) == integrity.file_sha256(path)[:16]
    os.remove(path)
    assert integrity.manifest_id(path) is None


def test_an_altered_or_missing_file_is_named():
    path = _device({"lib/a.py": b"x = 1\n", "b.json": b"{}"})
    with open(_ROOT + "lib/a.py", "ab") as f:
        f.write(b"# one more line\n")
    assert integrity.check(path, _ROOT) == "firmware file altered: lib/a.py"
    path = _device({"lib/a.py": b"x = 1\n", "b.json": b"{}"})
    os.remove(_ROOT + "b.json")
    assert integrity.check(path, _ROOT) == "firmware file missing: b.json"


def test_a_missing_or_broken_manifest_locks():
    path = _device({"b.json": b"{}"}, manifest=False)
    assert integrity.check(path, _ROOT).startswith("no firmware manifest")
    with open(path, "w") as f:
        f.write('{"files": ')
    assert integrity.check(path, _ROOT).endswith("is not valid JSON")
    with open(path, "w") as f:
        f.write('{"files": {}}')
    assert integrity.check(path, _ROOT).endswith("lists no files")


def test_a_module_the_manifest_does_not_list_is_named():
    # A .py next to the deployed .mpy would be imported instead of it; one at the root comes
    # first on sys.path. Either one locks, whatever the listed files say.
    path = _device({"lib/a.mpy": b"M\x06", "b.json": b"{}"})
    with open(_ROOT + "lib/a.py", "w") as f:
        f.write("x = 2\n")
    assert integrity.check(path, _ROOT) == "firmware file not in the manifest: lib/a.py"
    path = _device({"lib/a.mpy": b"M\x06", "b.json": b"{}"})
    with open(_ROOT + "c.py", "w") as f:
        f.write("x = 3\n")
    assert integrity.check(path, _ROOT) == "firmware file not in the manifest: c.py"
    os.remove(_ROOT + "c.py")
    with open(_ROOT + "notes.txt", "w") as f:  # not code: nothing imports it
        f.write("calibrated by A. N. Other\n")
    assert integrity.check(path, _ROOT) is None
    os.remove(_ROOT + "notes.txt")


def _name_image(path, image):
    with open(path) as f:
        manifest = json.load(f)
    manifest["image"] = image
    with open(path, "w") as f:
        json.dump(manifest, f)


def test_the_device_must_run_the_image_the_manifest_names():
    # The frozen modules come before /lib on the ESP32's sys.path: another image runs other code,
    # however well the files match.
    path = _device({"b.json": b"{}"})
    _name_image(path, "0123456789abcdef")
    assert integrity.check(path, _ROOT, image="0123456789abcdef") is None
    assert integrity.check(path, _ROOT, image="fedcba9876543210") == (
        "firmware image differs: the device runs image fedcba9876543210, the manifest names "
        "image 0123456789abcdef")
    assert integrity.check(path, _ROOT) == (  # a stock MicroPython: no image at all
        "firmware image missing: the manifest names image 0123456789abcdef, this MicroPython "
        "has no firmware frozen in")
    path = _device({"lib/a.mpy": b"M\x06", "b.json": b"{}"})  # the .mpy path: no image named
    assert integrity.check(path, _ROOT) is None
    assert integrity.check(path, _ROOT, image="0123456789abcdef") == (
        "firmware image not in the manifest: the device runs image 0123456789abcdef, the "
        "manifest is for firmware files")


def test_the_running_image_is_the_frozen_identity_or_none():
    image = integrity.frozen_image()
    # None where the firmware is loaded from files (CPython, the 64-bit port); the chip-shaped
    # interpreter has the firmware frozen in with its build id, 16 hex digits.
    assert image is None or (len(image) == 16 and int(image, 16) >= 0)

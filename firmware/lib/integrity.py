# Firmware and configuration integrity: the deploy step writes manifest.json, the SHA-256 of every
# file it put on the device (boot.py, main.py, board file, preset library; on the .mpy development
# path the modules too) and the build id of the firmware image the device must run (null: the
# firmware lives in files, on a stock MicroPython). The boot self-test checks each one; a missing,
# altered or unreadable file, or another image, locks emission and names what differs. The
# manifest is written last, so an interrupted deploy leaves a device that refuses to arm, never a
# half-new one that emits.
import hashlib
import json
import os
from binascii import hexlify

MANIFEST = "manifest.json"
_CHUNK = 512


def frozen_image():
    """The build id of the firmware frozen into this MicroPython image (image_id.py, which the
    image build writes: host_tools/image.py), or None: a stock MicroPython, the firmware in
    files."""
    try:
        import image_id
    except ImportError:
        return None
    return image_id.BUILD_ID


def check(manifest_path=MANIFEST, root="", image=None):
    """None if this is the image the manifest names and every file it lists has its digest, else
    the first problem found. `image`: the running image's build id (frozen_image()); None, the
    default, claims no image, so a forgotten argument refuses a manifest that names one."""
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except OSError:
        return "no firmware manifest (%s): deploy the firmware with its manifest" % manifest_path
    except ValueError:
        return "firmware manifest %s is not valid JSON" % manifest_path
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        return "firmware manifest %s lists no files" % manifest_path
    wanted = manifest.get("image")
    if wanted != image:
        # The frozen modules come before /lib on the ESP32's sys.path: with an image other than
        # the one deployed for, other code runs than the manifest vouches for.
        if image is None:
            return "firmware image missing: the manifest names image %s, this MicroPython has " \
                "no firmware frozen in" % wanted
        if wanted is None:
            return "firmware image not in the manifest: the device runs image %s, the manifest " \
                "is for firmware files" % image
        return "firmware image differs: the device runs image %s, the manifest names image %s" \
            % (image, wanted)
    for folder in ("", "lib"):
        stray = _unlisted_code(root, folder, files)
        if stray is not None:
            # An unlisted module would be imported instead of, or beside, the checked ones
            # ("" comes first on sys.path, and a .py beats a .mpy of the same name).
            return "firmware file not in the manifest: %s" % stray
    buf = bytearray(_CHUNK)
    for name in sorted(files):
        try:
            digest = file_sha256(root + name, buf)
        except OSError:
            return "firmware file missing: %s" % name
        if digest != files[name]:
            return "firmware file altered: %s" % name
    return None


def manifest_id(manifest_path=MANIFEST):
    """Which deployment this is: the first 16 hex digits of the manifest's SHA-256 (None without
    one). `laserctl deploy` compares it with the manifest it wrote."""
    try:
        return file_sha256(manifest_path)[:16]
    except OSError:
        return None


def file_sha256(path, buf=None):
    """The hex SHA-256 of a file, read in chunks (a whole module may not fit in the heap)."""
    buf = buf or bytearray(_CHUNK)
    view = memoryview(buf)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return hexlify(h.digest()).decode()


def _unlisted_code(root, folder, files):
    """The first Python module (.py or .mpy) in `folder` that the manifest does not list."""
    path = root + folder
    prefix = folder + "/" if folder else ""
    try:
        names = os.listdir(path) if path else os.listdir()
    except OSError:
        return None  # no such folder: nothing in it can be imported
    for name in sorted(names):
        if (name.endswith(".py") or name.endswith(".mpy")) and prefix + name not in files:
            return prefix + name
    return None

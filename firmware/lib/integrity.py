# Firmware and configuration integrity: the deploy step writes manifest.json, the SHA-256 of every
# file it put on the device (firmware, board file, preset library). The boot self-test checks each
# one; a missing, altered or unreadable file locks emission and names the file. The manifest is
# written last, so an interrupted deploy leaves a device that refuses to arm, never a half-new one
# that emits.
import hashlib
import json
import os
from binascii import hexlify

MANIFEST = "manifest.json"
_CHUNK = 512


def check(manifest_path=MANIFEST, root=""):
    """None if every file the manifest lists has its digest, else the first problem found."""
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

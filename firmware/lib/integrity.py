# Firmware and configuration integrity: the deploy step writes manifest.json, the SHA-256 of every
# file it put on the device (firmware, board file, preset library). The boot self-test checks each
# one; a missing, altered or unreadable file locks emission and names the file. The manifest is
# written last, so an interrupted deploy leaves a device that refuses to arm, never a half-new one
# that emits.
import hashlib
import json
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
    buf = bytearray(_CHUNK)
    for name in sorted(files):
        try:
            digest = file_sha256(root + name, buf)
        except OSError:
            return "firmware file missing: %s" % name
        if digest != files[name]:
            return "firmware file altered: %s" % name
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

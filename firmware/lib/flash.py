# The device's files, reached through one small object: the real filesystem on the chip and the
# virtual device, a flash that loses power in the middle of a write in the tests
# (tests/firmware/fakeflash.py). The settings store and the journal take one in their constructor.
import os

# This file on the flash asks for a maintenance boot (startup.py reads it, the service's restart
# writes it, halt.py reads it too): here, where all three can import it without importing each
# other.
MAINTENANCE_FLAG = "maintenance"


class Flash:
    """The filesystem the firmware runs from. On the ESP32 it is littlefs: a rename replaces its
    target atomically, and a file's new data is committed when the file is closed."""

    def open(self, path, mode):
        return open(path, mode)

    def rename(self, old, new):
        os.rename(old, new)

    def remove(self, path):
        """Remove `path`; a file that is not there is not an error."""
        try:
            os.remove(path)
        except OSError:
            pass

    def size(self, path):
        """The size of `path` in bytes, or None if there is no such file."""
        try:
            return os.stat(path)[6]
        except OSError:
            return None


def read_bytes(flash, path):
    """The whole of `path`, or None if it cannot be read."""
    try:
        with flash.open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def write_atomic(flash, path, data):
    """Replace `path` with `data` (bytes) so that a power cut at any moment leaves either the old
    file or the new one, whole: the data goes to a temporary file that is closed (committed)
    before a rename puts it in place."""
    tmp = path + ".tmp"
    with flash.open(tmp, "wb") as f:
        f.write(data)
    flash.rename(tmp, path)

# A simulated flash for the firmware tests (CPython and MicroPython alike): files in memory, and a
# power cut that can be scheduled at any step of a write. Every byte written is one step, and so
# is every rename and remove; `cut_after(k)` lets k steps happen and cuts the power at the next.
#
# What survives a cut is chosen by `keep_unclosed`:
#   True  (a FAT-like worst case): every byte written before the cut is on the flash, including
#         the first bytes of a write cut in its middle;
#   False (littlefs): data written to a file that was not closed is lost, the file keeps what it
#         had at its last close.
# A rename or a remove happens entirely or not at all (littlefs guarantees it).


class PowerCut(BaseException):
    """The power went. A BaseException: no `except Exception` in the firmware may swallow it."""


class FakeFlash:
    def __init__(self, keep_unclosed=True):
        self.files = {}  # path -> bytes, as committed
        self.keep_unclosed = keep_unclosed
        self.steps = 0  # steps taken so far (count a write sequence with a flash never cut)
        self._budget = None
        self._open = []

    def cut_after(self, steps):
        """Let `steps` more steps happen, then cut the power (PowerCut) at the next one."""
        self._budget = steps

    def _step(self):
        if self._budget is not None:
            if self._budget == 0:
                self._power_lost()
            self._budget -= 1
        self.steps += 1

    def _power_lost(self):
        for f in self._open:
            if self.keep_unclosed:
                self.files[f.path] = bytes(f.data)
            f.dead = True
        self._open = []
        self._budget = None
        raise PowerCut()

    # -- the interface of flash.Flash ----------------------------------------------------------

    def open(self, path, mode):
        if "r" in mode:
            if path not in self.files:
                raise OSError(2)  # ENOENT
            return _Reader(self.files[path], "b" in mode)
        data = bytearray(self.files.get(path, b"")) if "a" in mode else bytearray()
        f = _Writer(self, path, data, "b" in mode)
        self._open.append(f)
        if "w" in mode and self.keep_unclosed:
            self.files[path] = b""  # truncated at once, as the file is opened
        return f

    def rename(self, old, new):
        if old not in self.files:
            raise OSError(2)
        self._step()
        self.files[new] = self.files.pop(old)

    def remove(self, path):
        if path in self.files:
            self._step()
            del self.files[path]

    def size(self, path):
        data = self.files.get(path)
        return None if data is None else len(data)

    def _closed(self, f):
        self._open.remove(f)
        self.files[f.path] = bytes(f.data)


class _Writer:
    def __init__(self, flash, path, data, binary):
        self.flash, self.path, self.data, self.binary = flash, path, data, binary
        self.dead = False

    def write(self, data):
        if self.dead:
            raise OSError(5)  # EIO: the power is gone
        if not self.binary:
            data = data.encode()
        for byte in data:
            self.flash._step()
            self.data.append(byte)
        return len(data)

    def close(self):
        if not self.dead:
            self.dead = True
            self.flash._closed(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None or not issubclass(exc[0], PowerCut):
            self.close()


class _Reader:
    def __init__(self, data, binary):
        self.data, self.binary, self.pos = data, binary, 0

    def read(self, size=-1):
        end = len(self.data) if size is None or size < 0 else self.pos + size
        chunk = self.data[self.pos:end]
        self.pos += len(chunk)
        return chunk if self.binary else chunk.decode()

    def readline(self):
        end = self.data.find(b"\n", self.pos)
        end = len(self.data) if end < 0 else end + 1
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk if self.binary else chunk.decode()

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

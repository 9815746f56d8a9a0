# The garbage collector, run where the firmware chooses (docs/memory.md). On the chip a collection
# is a pause of its own and the heap never moves an object: what is allocated while garbage fills
# the heap lands high in it and stays there, cutting the free space into pieces. So the boot
# collects between its stages, and the loop at the end of a tick (app.py). On CPython, where the
# logic is tested, reference counting frees memory and these do nothing.
import gc
import sys

_MICROPYTHON = hasattr(gc, "threshold")


def collect():
    """A full collection (MicroPython)."""
    if _MICROPYTHON:
        gc.collect()


def threshold(bytes_):
    """Collect by itself after `bytes_` more of allocation; -1: only when the heap is full."""
    if _MICROPYTHON:
        gc.threshold(bytes_)


def forget(module):
    """Drop the module named `module` from the interpreter's modules: the objects its import made
    (its functions, its globals: over a kilobyte for the preset library's protocols.py) go at the
    next collection, and the next import makes them again (a frozen module's code stays in the
    flash). For a module used only now and then, between sessions."""
    sys.modules.pop(module, None)

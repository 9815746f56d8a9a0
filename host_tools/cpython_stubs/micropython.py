"""Shared: MicroPython's `micropython` module, what the firmware uses of it on CPython.

On MicroPython, const() makes a module-level integer a compile-time constant (no dictionary
entry, no lookup at run time); on CPython a plain value does the same job.
"""


def const(value):
    return value

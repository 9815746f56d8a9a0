# Faults injected into the virtual device (a scenario's {"fault": NAME}, simworld.World.set_input):
# the plant's parts failing (sim_plant models what a failed part does), then faults of the
# computer and of the firmware itself. The world keeps their state, which its clock moves with it
# (World.__init__, World._rebase): the next input read's stall, the end of the slow ticks, the
# error the next read raises and the heap held meanwhile.
# host_tools/scenario.py reads FAULTS from this file's source: the one list of them.
FAULTS = ("thermistor_open", "thermistor_short", "thermistor_stuck", "fan_failure",
          "enable_stuck", "power_cut", "loop_hang", "slow_ticks", "firmware_exception",
          "memory_exhaustion", "dose_count_bug", "firmware_tampered", "board_corrupted")
_HANG_US = 5000000  # loop_hang: a read that never returns within the watchdog's time
_SLOW_TICK_US = 15000  # slow_ticks: every tick takes this much longer ...
_SLOW_FOR_US = 2000000  # ... for this long


def inject(world, name):
    """The fault `name` (one of FAULTS) happens now."""
    if name not in FAULTS:
        raise ValueError("unknown fault %r" % name)
    if name == "fan_failure":
        world.plant.fan_stops()
    elif name.startswith("thermistor_"):
        world.plant.thermistor_fails(name)
    elif name == "enable_stuck":  # the driver's enable input held high (a shorted transistor)
        world.plant.enable_stuck = True
        world.outputs_changed()  # the light, and the enable sense pin's level
    elif name == "power_cut":
        world.power_cut()
    elif name == "loop_hang":
        world.stall_us = _HANG_US
    elif name == "slow_ticks":
        world.slow_until_us = world.now_us + _SLOW_FOR_US
    elif name == "firmware_exception":
        world.raise_next = OSError("injected: the input read failed")
    elif name == "memory_exhaustion":
        world.raise_next = MemoryError
    elif name == "dose_count_bug":
        _dose_count_bug()
    elif name == "firmware_tampered":
        _firmware_tampered()
    elif name == "board_corrupted":
        _board_corrupted()
    else:  # in FAULTS, but not here: no fault may pass for injected without its action
        raise ValueError("fault %r has no action" % name)


def read_stall(world):
    """Called on every read of the key input (once per tick): the computer faults that show as a
    read that takes too long, or fails."""
    if world.stall_us:
        stall, world.stall_us = world.stall_us, 0
        world.advance_to(world.now_us + stall)  # the watchdog may reset the chip meanwhile
    if world.now_us < world.slow_until_us:
        world.advance_to(world.now_us + _SLOW_TICK_US)
    if world.raise_next is not None:
        error, world.raise_next = world.raise_next, None
        if error is MemoryError:
            world.heap_hog = _exhaust_heap()  # until the firmware sleeps again (World.sleep_us)
        raise error


def _exhaust_heap():
    """Fill the heap, so that the firmware's error path runs short of memory; sleep_us gives it
    back. One 4 KB block is left free: the simulated pins allocate where the chip's do not, and
    the outputs must still be switchable as on the chip."""
    hog, block = [], 4096
    while block >= 16:
        try:
            hog.append(bytearray(block))
        except MemoryError:
            block //= 2
    if hog and len(hog[0]) == 4096:
        hog.pop(0)
    return hog


def _dose_count_bug():
    """A bug in the state machine: it never sees the dose reached. Patched into the loaded
    firmware (a reset loads it afresh); only the supervisor's own budget can stop the light."""
    import sys

    sys.modules["controller"].Controller._dose_reached = lambda self, dosimeter: False


def _firmware_tampered():
    """main.py changed after deployment: firmware on the filesystem in every image (a frozen image
    keeps its modules in flash, out of a file's reach)."""
    with open("main.py", "a") as f:
        f.write("# changed after deployment\n")


def _board_corrupted():
    with open("board.json") as f:
        text = f.read()
    with open("board.json", "w") as f:
        f.write(text[: len(text) // 2])  # a write cut short

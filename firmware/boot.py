# Runs first after every reset, before main.py. First the serial port stops being a keyboard: a
# 0x03 byte is then data (which the JSON protocol refuses), never a KeyboardInterrupt that stops
# the code (docs/threat-model.md). This comes before the laser is gated off because an interrupt
# during that import would skip both the gating and main.py; until then the laser lines are
# inputs held low by their hardware pull-downs.
import micropython

micropython.kbd_intr(-1)
try:
    for _ in range(1):
        pass  # a branch: a Ctrl-C that arrived before the line above is raised here, and dropped
except KeyboardInterrupt:
    pass
# Nothing may escape from here: a boot.py that fails makes the board skip main.py for its REPL.
try:
    import hw

    hw.boot_safe()
except Exception:  # noqa: BLE001 - main.py fails the same way, then halts and says why
    pass

# The therapy laser controller. Runs after boot.py. While it runs, the serial port carries the
# JSON protocol and nothing else; the REPL is reached through a maintenance boot only (the reset
# button held at boot, or the PIN-guarded service restart): docs/serial.md.
import micropython

micropython.kbd_intr(-1)  # again: the board's script runner turns Ctrl-C back on for each file
try:
    for _ in range(1):
        pass  # a branch: a Ctrl-C that arrived before the line above is raised here, and dropped
except KeyboardInterrupt:
    pass
try:
    import hw
    import startup

    app = startup.main(hw)  # the App, booted; None in a maintenance boot
    del startup  # the boot's code (startup.main dropped it from the modules) is garbage now
    if app is not None:
        app.run()  # the loop: returns never
except (Exception, KeyboardInterrupt) as e:  # whatever stops the loop, the port stays JSON
    try:
        import halt
    except Exception:  # noqa: BLE001 - not even the halt: dark and silent, never the REPL
        import time

        while True:
            time.sleep_ms(1000)
    halt.forever(e)  # returns only in a maintenance boot (the flag file, the reset button)
micropython.kbd_intr(3)  # a maintenance boot: Ctrl-C interrupts code again, for mpremote

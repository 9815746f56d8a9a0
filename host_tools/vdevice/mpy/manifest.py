# The simulated machine, frozen into the chip-shaped interpreter beside the firmware so that its
# bytecode stays out of the heap the firmware is measured in (docs/memory.md).
freeze(".", ("simworld.py", "vdev.py", "machine.py", "time.py", "bench_tick.py", "repl_uart.py"))

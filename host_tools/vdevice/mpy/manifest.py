# The simulated machine, frozen into the chip-shaped interpreter beside the firmware so that its
# bytecode stays out of the heap the firmware is measured in (docs/memory.md). Its `machine` and
# `time` are sim_machine.py and sim_time.py: frozen under the built-ins' names they would replace
# the real modules for every script the interpreter runs; simworld.install() aliases them.
freeze(".", ("simworld.py", "sim_plant.py", "sim_faults.py", "vdev.py", "sim_machine.py",
             "sim_time.py", "sim_display.py", "bench_tick.py", "repl_uart.py"))

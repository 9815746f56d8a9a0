# Feeds the bytes of a file to the firmware's serial port, on the real App (tests/firmware
# support.Rig) and a running treatment, and prints every line the firmware writes, as it writes
# them: tests/test_serial_fuzz.py checks them byte by byte.
#   MICROPYPATH=.frozen:firmware/lib:tests/firmware micropython tests/firmware/feed_serial.py FILE
import sys

from support import Rig

with open(sys.argv[1], "rb") as f:
    data = f.read()
rig = Rig().attach_memory()
rig.start_emitting()
rig.hw.serial_in += data
budget = rig.app.commands.lines.budget
for _ in range(len(data) // budget + data.count(b"\n") + 3):
    rig.tick()
for line in rig.lines + [rig.last_status]:
    print(line)
print("state", rig.state, "enable", rig.hw.enable, "fault", rig.app.controller.fault_code)

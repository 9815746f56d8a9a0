# Runs the dual-interpreter firmware tests on the MicroPython unix port:
#   MICROPYPATH=.frozen:firmware/lib:tests/firmware micropython tests/firmware/mpy_runner.py MOD...
# Prints one line per test and ends with "N passed, N failed"; exits 1 on any failure.
import sys

passed = failed = 0
for name in sys.argv[1:]:
    module = __import__(name)
    for attr in sorted(dir(module)):
        if not attr.startswith("test_"):
            continue
        try:
            getattr(module, attr)()
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print("FAIL %s.%s: %s: %s" % (name, attr, type(e).__name__, e))
            sys.print_exception(e)
        else:
            passed += 1
            print("ok   %s.%s" % (name, attr))
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)

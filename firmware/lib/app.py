# The cyclic loop: sense -> decide -> actuate -> record, once per tick (board loop_ms, 10 ms by
# default). No threads, no asyncio: one loop whose every tick ends with the outputs applied.
import json
import time

import board as board_file
import treatment as treatment_module
from controller import SOFTWARE, Controller
from dosimeter import Dosimeter
from recorder import Recorder
from records import Inputs, Outputs
from supervisor import Supervisor
from ticks import ticks_add, ticks_diff

VERSION = "0.1.0"


class App:
    """Wires the pure logic to a hardware object with sense/actuate/safe_off (duck-typed).

    `write` receives each JSON line the recorder produces (default: print to the serial port)."""

    def __init__(self, hw, board, treatment, now_ms, write=print):
        self.hw = hw
        self.period_ms = board["loop_ms"]
        self.inputs = Inputs(board["thermistor"]["samples"])
        self.outputs = Outputs()
        self.controller = Controller(board, treatment, now_ms)
        self.supervisor = Supervisor(board)
        self.dosimeter = Dosimeter()
        self.recorder = Recorder(board["timing"]["status_period_ms"], treatment, write)
        self.overruns = 0

    def tick(self, now_ms):
        inp, out = self.inputs, self.outputs
        self.hw.sense(inp, now_ms)
        self.dosimeter.account(now_ms)
        self.controller.step(inp, self.dosimeter, out)
        self.supervisor.veto(inp, out)
        self.hw.actuate(out)
        self.dosimeter.applied(out.laser_enable, self.controller.power_uw, now_ms)
        self.recorder.record(now_ms, self)

    def step(self, now_ms):
        """One tick; if anything in it fails, the outputs go off and SOFTWARE latches."""
        try:
            self.tick(now_ms)
        except Exception as e:  # noqa: BLE001 - every failure must end in the safe state
            self._stop_emission(now_ms)
            self.controller.fault(SOFTWARE, now_ms)
            self.recorder.error(now_ms, e)
            self.recorder.record(now_ms, self)  # the fault is logged in the tick it happened

    def run(self):
        period = self.period_ms
        next_ms = time.ticks_ms()
        try:
            while True:
                self.step(time.ticks_ms())
                next_ms = ticks_add(next_ms, period)
                wait = ticks_diff(next_ms, time.ticks_ms())
                if wait > 0:
                    time.sleep_ms(wait)
                else:
                    self.overruns += 1
                    next_ms = time.ticks_ms()
        finally:
            # Ctrl-C from mpremote, a soft reset, or anything else that ends the loop.
            now = time.ticks_ms()
            self._stop_emission(now)
            self.recorder.halt(now, self)

    def _stop_emission(self, now_ms):
        """Outputs off, and the light emitted until `now_ms` counted."""
        self.hw.safe_off()
        self.outputs.safe()
        self.dosimeter.account(now_ms)
        self.dosimeter.applied(False, 0, now_ms)


def load_treatment(path, board, library_path="protocols.json"):
    """The selected treatment from `path`, or None if there is none or it is invalid. The file
    holds a treatment spec, or names a preset: {"protocol": "knee", "skin_type": 5}."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except OSError:
        return None
    except ValueError as e:
        _report_error(path, "not valid JSON: %s" % e)
        return None
    try:
        if isinstance(spec, dict) and "protocol" in spec:
            import protocols

            for key in spec:
                if key not in ("protocol", "skin_type"):
                    raise ValueError("%s: %s beside a preset's name: give the preset, or the whole "
                                     "treatment" % (path, key))
            spec = protocols.spec_for(protocols.load(library_path), spec["protocol"],
                                      spec.get("skin_type"))
        return treatment_module.for_board(spec, board)
    except (ValueError, OSError) as e:
        _report_error(path, str(e))
        return None


def _report_error(where, error):
    print(json.dumps({"ev": "error", "where": where, "error": error}))


def main(hw_module, board_path="board.json", treatment_path="treatment.json"):
    try:
        board = board_file.load(board_path)
    except board_file.BoardError as e:
        _report_error(board_path, str(e))
        return
    hw = hw_module.Hardware(board)
    app = App(hw, board, load_treatment(treatment_path, board), time.ticks_ms())
    print(json.dumps({"ev": "boot", "version": VERSION, "board": board["name"],
                      "loop_ms": app.period_ms}))
    app.run()

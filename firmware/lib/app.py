# The cyclic loop: sense -> decide -> actuate -> record -> serial requests, once per tick (board
# loop_ms, 10 ms by default; App.STAGES). No threads, no asyncio: one loop whose every tick
# applies its outputs before it writes to the flash or takes a serial request. (The boot that
# builds the App is startup.py's.)
import gc
import time
from array import array

import heap
from controller import (
    EMITTING,
    FAULT,
    LOOP_OVERRUN,
    OUT_OF_MEMORY,
    SOFTWARE,
    WATCHDOG_RESET,
    Controller,
)
from dosimeter import Dosimeter
from link import Outbox
from micropython import const
from recorder import Recorder
from records import Inputs, Outputs
from session import Session
from supervisor import Supervisor
from thermal import median
from thermistor import OK
from ticks import ticks_add, ticks_diff

VERSION = "0.2.0"
_PLAUSIBLE_MIN_C = 5.0  # the self-test's coldest believable heatsink in a treatment room
_PLAUSIBLE_SPREAD_UV = 20000  # one tick's samples further apart than this: a noisy sensor
# Garbage collection on the loop's terms (docs/memory.md). The heap is collected at the end of a
# tick, its outputs applied and recorded: when the state changed, after a serial request, and at
# least every _GC_PERIOD_MS. In between it gathers a few KB of garbage (a status line allocates
# up to 1.6 KB on the chip), far below the free heap: the collection MicroPython starts by
# itself when an allocation finds no room does not come in the loop's work. While EMITTING, a
# collection is a pause in a tick that may then overrun (about as long as a tick on the chip
# interpreter: `make bench`), and how long it takes hardly depends on the garbage: there the heap
# is collected only when the state changes and every _GC_PERIOD_EMITTING_MS, not after each
# request (the UART bounds the replies' garbage: a host asking every tick gets ~11 replies a
# second at 115200 baud). Outside EMITTING,
# gc.threshold also collects after every _GC_THRESHOLD_BYTES of allocation, wherever that falls
# (no light to delay): a request like `list` allocates some 220 KB in one tick, and collected as
# it goes, the heap's front stays low and its free top whole. In EMITTING it is off: it counts
# every allocation, also the frames of function calls freed as they return (about 1 KB a quiet
# tick on the chip), so it would start a collection every few ticks at any point in them.
_GC_PERIOD_MS = const(250)
_GC_PERIOD_EMITTING_MS = const(1000)
_GC_THRESHOLD_BYTES = const(8192)


class App:
    """Wires the pure logic to a hardware object (duck-typed: what startup.HARDWARE and
    startup.HARDWARE_ATTRIBUTES name). Call self_test() once, then step() every tick (or
    run(), which does both and feeds the watchdog).

    Every line for the serial port goes into `outbox` (link.Outbox; by default one writing with
    hw.write_serial), which each tick ends by draining as far as the UART takes it without
    waiting."""

    def __init__(self, hw, board, treatment, now_ms, outbox=None):
        self.session = Session(hw)  # the running session's figures, kept in RTC memory
        self.hw = hw
        self.board = board
        self.treatment = treatment
        self.period_ms = board["loop_ms"]
        timing = board["timing"]
        self.watchdog_ms = timing["watchdog_ms"]
        self.overruns_per_s = timing["overruns_per_s"]
        self.inputs = Inputs(board["thermistor"]["samples"])
        self.outputs = Outputs()
        self.controller = Controller(board, treatment, now_ms)
        self.supervisor = Supervisor(board, treatment)
        self.dosimeter = Dosimeter()
        self.outbox = outbox or Outbox(hw.write_serial)
        self.recorder = Recorder(timing["status_period_ms"], treatment, self.outbox)
        self.requested = False  # the state machine asked for emission this tick (before the veto)
        self.version = VERSION
        # Set by the boot (startup.main): which deployment runs (integrity.manifest_id), the frozen
        # image's build id (integrity.frozen_image()), the chip's unique id in hex (hw.device_id()).
        self.manifest_id = None
        self.image = None
        self.device_id = None
        # The device's memory and its serial link, where startup.py (or a test) attaches them.
        self.flash = None  # flash.Flash: where the treatment selection is kept
        self.settings = None  # settings.Settings
        self.journal = None  # journal.Journal
        self.logbook = None  # logbook.Logbook, which writes the journal
        self.commands = None  # commands.Commands: the serial protocol
        self.selection = None  # what treatment.json names: {"protocol": ..., "skin_type": ...}
        self.library_path = "protocols.json"
        self.treatment_path = "treatment.json"
        self.restart_requested = False  # the service asked for a reset (to apply settings)
        self.overruns = 0
        self._overrun_window_ms = now_ms
        # Whole seconds since this boot, for the journal's records: counted from the ticks' clock
        # (which wraps every 12.4 days), in small ints for 34 years.
        self.uptime_s = 0
        self._uptime_ms = now_ms
        self._overruns_in_window = 0
        # The garbage collector (swapped by the tests to see where it runs); what it last saw.
        self.collect_garbage = heap.collect
        self._gc_ms = now_ms
        self._gc_state = -1
        self._gc_requests = 0
        # The operator panel, where the board has one and its display answered (panel.py); and
        # whether the operator confirmed protective eyewear for this session on it (the board's
        # panel.eyewear asks; the arm and session records say).
        self.eyewear_confirmed = False
        # How long the loop's last tick took, ms (run() measures it with the two clock reads a
        # tick makes anyway; 0 where no loop runs): the panel rests while the ticks run slow.
        self.last_tick_ms = 0
        self.panel = None
        display = getattr(hw, "display", None)
        if display is not None:
            from panel import Panel

            self.panel = Panel(display, self, now_ms)

    # -- boot ----------------------------------------------------------------------------------

    def self_test(self, now_ms, integrity_problem=None, watchdog_reset=False,
                  settings_problem=None):
        """BOOT: with every output off, check the firmware's integrity (the caller's verdict),
        the emission gate and the sensor. A failure locks arming and the supervisor until the
        next boot and is reported; after a watchdog reset the controller starts in FAULT.
        Without valid settings (`settings_problem`) only a service calibration point may arm.
        Returns the problem or None."""
        problem = integrity_problem or self._check_hardware(now_ms)
        if problem is not None:
            self.supervisor.lock(problem)
        elif settings_problem is not None:
            self.controller.calibration_only = settings_problem
            self.supervisor.calibration_only = True
        self.controller.booted(now_ms, problem, WATCHDOG_RESET if watchdog_reset else None)
        self.recorder.self_test(now_ms, problem or settings_problem)
        return problem or settings_problem

    def _check_hardware(self, now_ms):
        problem = self.hw.check_shutdown_path()
        if problem is not None:
            return "self-test: shutdown path: " + problem
        inp = self.inputs
        self.hw.sense(inp, now_ms)
        samples = array("i", inp.thermistor_samples)  # sorted by median() below
        uv = median(inp.thermistor_samples, samples)
        sensor = self.controller.thermal.sensor
        if sensor.check(uv) != OK:
            return "self-test: thermistor reads %d mV: open, shorted or out of range" % (uv // 1000)
        temp_c = sensor.temp_mc(uv) / 1000
        if temp_c < _PLAUSIBLE_MIN_C:
            return "self-test: thermistor reads %.1f C: implausibly cold" % temp_c
        if samples[-1] - samples[0] > _PLAUSIBLE_SPREAD_UV:
            return "self-test: thermistor samples spread over %d mV: noisy" % (
                (samples[-1] - samples[0]) // 1000)
        return None

    # -- the tick ------------------------------------------------------------------------------

    def tick(self, now_ms):
        """One tick: the functions of STAGES, in their order."""
        for stage in self.STAGES:
            stage(self, now_ms)

    # The tick's stages, each called with the App and the tick's time; App.STAGES (after the
    # class) lists them in their order.

    def _sense(self, now_ms):
        """The inputs: the hardware's, then the panel's turns and presses. A serial button
        command taken in the last tick is this step's: a panel press then waits a tick."""
        inp = self.inputs
        self.hw.sense(inp, now_ms)
        panel = self.panel
        if panel is not None:
            panel.sense(inp, now_ms)

    def _decide(self, now_ms):
        """The state machine's outputs, then the supervisor's veto over them."""
        inp, out, c = self.inputs, self.outputs, self.controller
        self.dosimeter.account(now_ms)
        c.step(inp, self.dosimeter, out)
        self.requested = out.laser_enable
        supervisor = self.supervisor
        supervisor.veto(inp, out, c.state == FAULT)
        if supervisor.trip is not None and c.state != FAULT:
            c.fault(supervisor.trip, now_ms)  # where the operator sees it, with its alarm
            c.drive(out, now_ms)  # FAULT's outputs: dark

    def _actuate(self, now_ms):
        out = self.outputs
        self._count(out, self.hw.actuate(out))

    def _record(self, now_ms):
        """The tick on the serial port (status, events), in RTC memory and in the journal."""
        self.recorder.record(now_ms, self)
        session = self.session
        session.update(self, now_ms)
        if self.logbook is not None:
            self.logbook.record(self)
        session.keep(self)

    def _serial(self, now_ms):
        """After the outputs: the button commands this step had are answered (the serial
        port's reply, the panel's notice of a refusal), then the serial port's next request is
        taken. A request's flash writes (a journal record, a selection, settings) so never come
        before this tick's outputs; a button command it gives goes to the next tick's step."""
        commands, panel = self.commands, self.panel
        if commands is not None:
            commands.finish(now_ms)
        if panel is not None:
            panel.answer()
        if commands is not None:
            commands.poll(now_ms)

    def _panel_update(self, now_ms):
        panel = self.panel
        if panel is not None:
            panel.update(now_ms)  # the screen: a bounded share of it per tick

    def _bookkeeping(self, now_ms):
        """The uptime, the heap's collection, a restart the service asked for."""
        if ticks_diff(now_ms, self._uptime_ms) >= 1000:
            self.uptime_s += 1
            self._uptime_ms = ticks_add(self._uptime_ms, 1000)
        self._collect(now_ms)
        if self.restart_requested:
            self._stop_emission(now_ms)
            self.outbox.flush()  # the reply and everything queued, before the reset clears them
            self.hw.restart()  # does not return on the chip

    def _drain(self, now_ms):
        self.outbox.drain()  # last: what the UART takes now, never waiting for it

    def _collect(self, now_ms):
        """The tick's end: collect the heap if the state changed, or a request was answered or
        _GC_PERIOD_MS passed since the last collection; in EMITTING only if the state changed or
        _GC_PERIOD_EMITTING_MS passed (see _GC_PERIOD_MS)."""
        state = self.controller.state
        requests = 0 if self.commands is None else self.commands.requests
        since_ms = ticks_diff(now_ms, self._gc_ms)
        if state != self._gc_state:
            heap.threshold(-1 if state == EMITTING else _GC_THRESHOLD_BYTES)
        elif state == EMITTING:
            if since_ms < _GC_PERIOD_EMITTING_MS:
                return  # leaving EMITTING is a state change: collected then whatever was asked
        elif requests == self._gc_requests and since_ms < _GC_PERIOD_MS:
            return
        self.collect_garbage()
        self._gc_ms, self._gc_state, self._gc_requests = now_ms, state, requests

    def step(self, now_ms):
        """One tick. If anything in it fails, the outputs go off and the controller restarts in
        FAULT (SOFTWARE, or OUT_OF_MEMORY). Returns whether the tick ran to its end: only then
        may the watchdog be fed."""
        try:
            self.tick(now_ms)
            return True
        except Exception as e:  # noqa: BLE001 - every failure must end in the safe state
            self._fail(now_ms, e)
            return False

    def _fail(self, now_ms, exc):
        # Outputs first: it allocates nothing, so it works even with the heap full.
        self._stop_emission(now_ms)
        # A button command, given to this tick's step or taken for the next one's, is not carried
        # past a failure: abandon() answers it with an error.
        self.inputs.command = None
        if self.commands is not None:
            self.commands.abandon()
        if self.panel is not None:
            self.panel.abandon()
        memory = isinstance(exc, MemoryError)
        if memory:
            gc.collect()
        self._restart_controller(OUT_OF_MEMORY if memory else SOFTWARE, now_ms)
        try:
            self.recorder.error(now_ms, exc)
            self.recorder.record(now_ms, self)  # the fault is logged in the tick it happened
            self.outbox.drain()  # and its lines start out in that tick, as a tick's would
        except MemoryError:
            gc.collect()  # the next tick's record catches up with the state and the fault

    def _restart_controller(self, code, now_ms):
        """A tick that failed may have left the controller half-updated: latch the fault, then
        carry on with a fresh one in FAULT (the old one if there is no memory for it)."""
        old = self.controller
        old.fault(code, now_ms)  # ends a running session with FAULT
        try:
            fresh = Controller(self.board, self.treatment, now_ms)
        except MemoryError:
            return
        fresh.take_over(old)
        self.controller = fresh

    # -- what the serial commands change ---------------------------------------------------------

    def select(self, treatment, selection):
        """A new treatment (or None), chosen between sessions (commands.py checks the state)."""
        self.treatment = treatment
        self.selection = selection
        self.controller.treatment = treatment
        self.supervisor.set_treatment(self.board, treatment)
        self.recorder.target_j = treatment.target_j if treatment else None

    def lock(self, reason):
        """Lock arming and emission until the next boot, saying why."""
        self.controller.lock(reason)
        self.supervisor.lock(reason)

    def overran(self, now_ms):
        """A tick overran its period: counted; `overruns_per_s` of them within a second fault."""
        self.overruns += 1
        if ticks_diff(now_ms, self._overrun_window_ms) >= 1000:
            self._overrun_window_ms = now_ms
            self._overruns_in_window = 0
        self._overruns_in_window += 1
        if self._overruns_in_window >= self.overruns_per_s:
            self._stop_emission(now_ms)
            self.controller.fault(LOOP_OVERRUN, now_ms)

    def run(self):
        """The loop, for ever: a tick every period; the watchdog fed after each tick that ran to
        its end. A hung tick is not fed, and the watchdog resets the chip into the safe state."""
        hw, period = self.hw, self.period_ms
        heap.collect()  # what the boot left (startup.py's code too, dropped by now)
        hw.start_watchdog(self.watchdog_ms)
        next_ms = time.ticks_ms()
        try:
            while True:
                start_ms = time.ticks_ms()
                if self.step(start_ms):
                    hw.feed_watchdog()
                next_ms = ticks_add(next_ms, period)
                end_ms = time.ticks_ms()
                self.last_tick_ms = ticks_diff(end_ms, start_ms)
                wait = ticks_diff(next_ms, end_ms)
                if wait > 0:
                    time.sleep_ms(wait)
                else:
                    next_ms = time.ticks_ms()
                    self.overran(next_ms)
        finally:
            # Ctrl-C from mpremote, a soft reset, or anything else that ends the loop.
            now = time.ticks_ms()
            self._stop_emission(now)
            self.recorder.halt(now, self)
            self.outbox.flush()  # the loop is over, the outputs are off: now it may wait

    def _stop_emission(self, now_ms):
        """Outputs off, and the light emitted until they went off counted."""
        off_ms = self.hw.safe_off()
        self.outputs.safe()
        self._count(self.outputs, now_ms if off_ms is None else off_ms)

    def _count(self, out, at_ms):
        """Both dosimeters: the light up to `at_ms`, when the hardware module applied `out`
        (later than the tick's start if the tick ran slow: that light is counted too), and
        from then on the light of `out`."""
        self.dosimeter.account(at_ms)
        self.dosimeter.applied(out.laser_enable, self.controller.peak_uw, at_ms, out.gate_hz,
                               out.gate_duty_u16)
        self.supervisor.actuated(out, at_ms)


# The tick, defined once: App.tick runs these in this order, and `laserctl bench` times each one
# by this same tuple (host_tools/vdevice/mpy/bench_tick.py; a stage's name is its function's,
# without the underscore). Plain functions in one tuple, made once: a tick binds no method and
# allocates nothing for them. The outputs are applied (_actuate) before anything in the tick may
# write to the flash or take a serial request (_serial). (Assigned here, after the class: with the
# tuple in the class body, the heap probe found board.py's bytecode, 15 KB, still held after the
# boot of the firmware as .mpy files; why was not found. The frozen image showed no difference.)
App.STAGES = (App._sense, App._decide, App._actuate, App._record, App._serial, App._panel_update,
              App._bookkeeping, App._drain)

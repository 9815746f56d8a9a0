# The cyclic loop: sense -> decide -> actuate -> record, once per tick (board loop_ms, 10 ms by
# default). No threads, no asyncio: one loop whose every tick ends with the outputs applied.
import gc
import json
import time
from array import array

import heap
import treatment as treatment_module
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
from link import Outbox, dumps, send_line
from micropython import const
from recorder import Recorder
from records import Inputs, Outputs
from session import Session
from supervisor import Supervisor
from thermal import median
from thermistor import OK
from ticks import ticks_add, ticks_diff

VERSION = "0.2.0"
MAINTENANCE_FLAG = "maintenance"  # this file on the flash asks for a maintenance boot
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
    """Wires the pure logic to a hardware object (duck-typed: sense, actuate, safe_off,
    check_shutdown_path, start_watchdog, feed_watchdog, write_serial, wall_clock_s, rtc_memory,
    rtc_memory_free, keep_rtc_memory). Call self_test() once, then
    step() every tick (or run(), which does both and feeds the watchdog).

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
        self.manifest_id = None  # which deployment runs (integrity.manifest_id), set by main()
        self.image = None  # the frozen image's build id (integrity.frozen_image()), set by main()
        self.device_id = None  # the chip's unique id in hex (hw.device_id()), set by main()
        # The device's memory and its serial link, where main() (or a test) attaches them.
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
        inp, out = self.inputs, self.outputs
        self.hw.sense(inp, now_ms)
        commands = self.commands
        if commands is not None:
            commands.poll(now_ms)  # may pass a button command to this tick's step
        panel = self.panel
        if panel is not None:
            panel.sense(inp, now_ms)  # so may the panel, if the serial port did not
        c = self.controller
        self.dosimeter.account(now_ms)
        c.step(inp, self.dosimeter, out)
        self.requested = out.laser_enable
        supervisor = self.supervisor
        supervisor.veto(inp, out, c.state == FAULT)
        if supervisor.trip is not None and c.state != FAULT:
            c.fault(supervisor.trip, now_ms)  # where the operator sees it, with its alarm
            c.drive(out, now_ms)  # FAULT's outputs: dark
        self._count(out, self.hw.actuate(out))
        self.recorder.record(now_ms, self)
        session = self.session
        session.update(self, now_ms)
        if self.logbook is not None:
            self.logbook.record(self)
        session.keep(self)
        if commands is not None:
            commands.finish(now_ms)
        if panel is not None:
            panel.update(now_ms)  # the screen: a bounded share of it per tick
        if ticks_diff(now_ms, self._uptime_ms) >= 1000:  # bookkeeping, after the outputs
            self.uptime_s += 1
            self._uptime_ms = ticks_add(self._uptime_ms, 1000)
        self._collect(now_ms)
        if self.restart_requested:
            self._stop_emission(now_ms)
            self.outbox.flush()  # the reply and everything queued, before the reset clears them
            self.hw.restart()  # does not return on the chip
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
        self.inputs.command = None  # a command of the failed tick is not carried into the next
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
        if self.controller.locked is None:
            self.controller.locked = reason
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


def load_treatment(path, board, library_path="protocols.json", report=None):
    """The selected treatment from `path`, or None if there is none or it is invalid. The file
    holds a treatment spec, or names a preset: {"protocol": "knee", "skin_type": 5}. A problem
    goes to `report(where, error)` (default: an error line straight to the serial port)."""
    report = report or _report_error
    try:
        with open(path) as f:
            spec = json.load(f)
    except OSError:
        return None
    except ValueError as e:
        report(path, "not valid JSON: %s" % e)
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
        report(path, str(e))
        return None
    finally:
        heap.forget("protocols")  # needed again only when a preset is chosen


def _report_error(where, error):
    send_line(dumps({"ev": "error", "where": where, "error": error}))


def maintenance_requested(hw):
    """Why this boot is a maintenance boot (no loop, no watchdog, nothing armed: the REPL and
    mpremote stay reachable), or None: the flag file on the flash, or the reset button held."""
    try:
        with open(MAINTENANCE_FLAG):
            return "flag file %s" % MAINTENANCE_FLAG
    except OSError:
        pass
    return "reset button held at boot" if hw.maintenance_button_held() else None


def selection_of(path):
    """What the treatment file names, for the journal: {"protocol": ..., "skin_type": ...} for
    a preset, or None (no file, or a custom treatment)."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError):
        return None
    # A preset by name; {"protocol": {...}} is a custom treatment, written out, not a preset.
    return spec if isinstance(spec, dict) and isinstance(spec.get("protocol"), str) else None


def open_memory(board, flash=None):
    """The settings store and the journal on `flash` (default: the device's own files):
    (flash, settings, logbook, journal, notes for the boot record). A journal that cannot be
    opened is None (assemble then refuses arming: no treatment goes unrecorded)."""
    from journal import Journal
    from logbook import Logbook
    from settings import Settings

    if flash is None:
        from flash import Flash

        flash = Flash()
    settings = Settings(flash, board)
    logbook = Logbook(flash, board)
    notes = {}
    if settings.problem or settings.notice:
        notes["settings"] = settings.problem or settings.notice
    try:
        journal = Journal(flash, on_record=logbook.on_record)
    except OSError as e:
        journal = None
        notes["journal"] = "cannot be opened: %s" % e
    else:
        found = journal.problems[:]
        if journal.repaired:
            found.append(journal.repaired)
        if found:
            notes["journal"] = "; ".join(found)
    logbook.attach(journal)
    return flash, settings, logbook, journal, notes


def main(hw_module, board_path="board.json", treatment_path="treatment.json"):
    """Returns only in a maintenance boot; anything else that stops it raises (main.py halts)."""
    board = _load_board(board_path)
    heap.collect()  # each stage of the boot leaves garbage: collected before the next one's
    hw = hw_module.Hardware(board)
    why = maintenance_requested(hw)
    if why is not None:
        hw.safe_off()
        send_line(dumps({"ev": "maintenance", "version": VERSION, "why": why,
                         "leave": "remove the flag file (mpremote rm :%s), release the button, "
                                  "reset" % MAINTENANCE_FLAG}))
        return
    clock_problem = hw.restore_wall_clock()  # before any record is stamped with the time
    app, notes = assemble(hw, board, treatment_path)
    # Its grid is built and the supervisor's limit taken: the loop reads only the grid.
    app.controller.thermal.sensor.release_model()
    if clock_problem is not None:
        notes["rtc"] = clock_problem
    if hw.display_problem is not None:
        notes["panel"] = hw.display_problem
    app.outbox.event_once(dumps({"ev": "boot", "version": VERSION, "board": app.board["name"],
                                 "loop_ms": app.period_ms, "watchdog_ms": app.watchdog_ms}))
    watchdog_reset = hw_module.reset_by_watchdog()
    integrity_problem = _identify(app)
    app.device_id = hw_module.device_id()
    problem = app.self_test(time.ticks_ms(), integrity_problem, watchdog_reset,
                            app.settings.problem)
    if problem:
        notes["selftest"] = problem
    heap.collect()
    app.logbook.boot(app, "WATCHDOG_RESET" if watchdog_reset else "RESET", notes,
                    time.ticks_ms())
    heap.collect()
    app.run()


# Modules the boot needs and the loop does not: imported where they are used and dropped after
# (heap.forget), so that their functions and globals do not hold the chip's heap while the loop runs
# (board.py's checks are imported again by a settings change, which validates the new board).
def _load_board(path):
    """The board file, validated (board.py); its error reported before it is raised."""
    import board as board_file

    try:
        board = board_file.load(path)
    except board_file.BoardError as e:
        _report_error(path, str(e))
        raise
    finally:
        heap.forget("board")
    heap.collect()  # the parse's garbage first: the compact board's tuples go low in the heap
    return board_file.compact(board)


def _identify(app):
    """Which deployment and image run (app.manifest_id, app.image), and the integrity check's
    problem or None (integrity.py: only at boot)."""
    import integrity

    try:
        app.manifest_id = integrity.manifest_id()
        app.image = integrity.frozen_image()
        return integrity.check(image=app.image)
    finally:
        heap.forget("integrity")
        heap.forget("image_id")  # what frozen_image() imported: its BUILD_ID is in app.image


def assemble(hw, board, treatment_path="treatment.json"):
    """The App as the device runs it: on the effective board (the board file with this
    device's settings), with its memory and the serial protocol. Returns (app, notes for the
    boot record)."""
    from commands import Commands

    flash, settings, logbook, journal, notes = open_memory(board)
    board = settings.board  # the board file with this device's calibration and limits
    heap.collect()
    problems = []  # the treatment file's, queued with the App's other lines
    treatment = load_treatment(treatment_path, board,
                               report=lambda where, error: problems.append((where, error)))
    heap.collect()
    app = App(hw, board, treatment, time.ticks_ms())
    for where, error in problems:
        app.recorder.error_text(where, error)
    app.flash, app.settings, app.journal, app.logbook = flash, settings, journal, logbook
    # Named only if it loaded: a preset this device can no longer give (a limit lowered since)
    # is not what status calls selected, and arming says nothing is.
    app.selection = selection_of(treatment_path) if treatment is not None else None
    app.treatment_path = treatment_path
    heap.collect()
    app.commands = Commands(app, hw.read_serial_byte, app.outbox, time.ticks_ms(),
                            logbook.pin_failures)
    if journal is None:
        app.controller.blocked = "journal cannot be opened: service needed"
    return app, notes

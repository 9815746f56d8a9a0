# The boot: what wires the device before its loop runs (main.py calls main()). The board file and
# the hardware, a maintenance boot, the settings store and the journal on the flash, the selected
# treatment, the App (app.py: the loop) with its serial protocol, the integrity check and the
# self-test, the boot record. main() returns the App ready to run, and drops this module from the
# modules first (heap.forget): none of this holds the chip's heap while the loop runs.
import json
import time

import heap
import treatment as treatment_module
from app import VERSION, App
from flash import MAINTENANCE_FLAG
from link import dumps, send_line

# The hardware object the boot makes (hw.Hardware) and gives the App: all that the firmware asks
# of it, here once. These methods (the loop's, the boot's, the serial protocol's, the journal's)
# and these attributes; nothing else. The tests' and the bench's stand-ins offer the same
# (tests/test_firmware_structure.py checks every side).
HARDWARE = ("sense", "actuate", "safe_off", "check_shutdown_path", "start_watchdog",
            "feed_watchdog", "read_serial_byte", "write_serial", "wall_clock_s", "set_wall_clock",
            "restore_wall_clock", "keep_rtc_memory", "restart", "maintenance_button_held")
HARDWARE_ATTRIBUTES = ("rtc_memory", "rtc_memory_free", "display", "display_problem")


def main(hw_module, board_path="board.json", treatment_path="treatment.json"):
    """The App of this device, booted and self-tested, its boot recorded: main.py runs its loop.
    None in a maintenance boot (no loop, no watchdog, nothing armed). Anything that stops the
    boot raises (main.py halts)."""
    try:
        board = _load_board(board_path)
        heap.collect()  # each stage of the boot leaves garbage: collected before the next one's
        hw = hw_module.Hardware(board)
        why = maintenance_requested(hw)
        if why is not None:
            hw.safe_off()
            send_line(dumps({"ev": "maintenance", "version": VERSION, "why": why,
                             "leave": "remove the flag file (mpremote rm :%s), release the "
                                      "button, reset" % MAINTENANCE_FLAG}))
            return None
        clock_problem = hw.restore_wall_clock()  # before any record is stamped with the time
        app, notes = assemble(hw, board, treatment_path)
        # Its grid is built and the supervisor's limit taken: the loop reads only the grid.
        app.controller.thermal.sensor.release_model()
        if clock_problem is not None:
            notes["rtc"] = clock_problem
        if hw.display_problem is not None:
            notes["panel"] = hw.display_problem
        app.outbox.event_once(dumps({"ev": "boot", "version": VERSION,
                                     "board": app.board["name"], "loop_ms": app.period_ms,
                                     "watchdog_ms": app.watchdog_ms}))
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
        return app
    finally:
        heap.forget("startup")  # main.py drops its own reference; App.run collects it


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
        app.controller.block("journal cannot be opened: service needed")
    return app, notes

# The service session's commands (docs/serial.md): settings, the PIN, calibration points, the
# journal's export and release, a restart. commands.py takes the request, checks that a service
# session is open (the PIN) and imports this module for it, dropping it from the modules again
# after (heap.forget): its functions hold no heap between requests.
from controller import STANDBY, STATE_NAMES
from fields import CommandError, check_fields, whole_field
from flash import MAINTENANCE_FLAG, write_atomic
from micropython import const
from records import ARM

MAX_POINT_S = const(60)  # the longest calibration point: a thermal power meter settles in ~10 s


def _logout(cmds, request, now_ms):
    check_fields(request, ())
    cmds.service_open = False
    return {"service": False}


def _save(cmds, request, changes, action):
    cmds._between_sessions(request)
    settings = cmds._settings(request)
    try:
        settings.save(changes)
    except ValueError as e:
        text = str(e)  # "pin: ..." needs no second "pin: "
        raise CommandError(text if text.startswith(request["cmd"] + ":") else
                           "%s: %s" % (request["cmd"], text))
    record = {"ev": "service", "action": action}
    for key in changes:
        if key != "pin":  # what was set, as stored; never a PIN, nor its hash
            record[key] = settings.values.get(key)
    cmds._journal_append(record)
    if action != "pin":
        # Safety parameters change at a boot, through the self-test, never under a running loop.
        cmds.app.lock("settings changed: restart the device to apply them")
    return {"saved": action, "settings": settings.describe(),
            "applies": "now" if action == "pin" else 'after a restart ({"cmd": "restart"})'}


def _calibrate(cmds, request, now_ms):
    check_fields(request, ("points", "date", "due_days"))
    changes = {"calibration": request.get("points"), "calibrated_on": request.get("date")}
    if "due_days" in request:
        changes["due_days"] = request["due_days"]
    return _save(cmds, request, changes, "calibration")


def _limits(cmds, request, now_ms):
    check_fields(request, ("max_power_w", "max_energy_j"))
    limits = {}
    for key in ("max_power_w", "max_energy_j"):
        if key in request:
            limits[key] = request[key]
    return _save(cmds, request, {"limits": limits}, "limits")


def _pin(cmds, request, now_ms):
    check_fields(request, ("new",))
    return _save(cmds, request, {"pin": {"new": request.get("new")}}, "pin")


def _cal_point(cmds, request, now_ms):
    """Arm a calibration point: `duty` held for `time_s` s of emission, for a power meter. The
    technician still needs the key, the interlock and the footswitch, as for a treatment."""
    check_fields(request, ("duty", "time_s"))
    duty = whole_field(request, "duty", 1, 65535)
    time_s = whole_field(request, "time_s", 1, MAX_POINT_S, 10)
    app = cmds.app
    if app.controller.state != STANDBY:
        raise CommandError("cal_point: only in STANDBY (the state is %s)"
                           % STATE_NAMES[app.controller.state])
    from treatment import CalibrationPoint

    try:
        point = CalibrationPoint(app.board, duty, time_s)
    except ValueError as e:
        raise CommandError("cal_point: %s" % e)
    cmds._before_point = (app.treatment, app.selection)
    app.select(point, {"protocol": "calibration", "duty": point.duty_u16})
    cmds._pass_to_step(request, ARM)


def _journal_export(cmds, request, now_ms):
    """The raw records, hash and all, for the host to verify and keep."""
    journal, lines = cmds._page(request, False)
    return {"lines": lines, "first_n": journal.first_n,
            "last_n": journal.last_n, "last_hash": journal.last_hash,
            "released_n": journal.released_n}


def _journal_clear(cmds, request, now_ms):
    check_fields(request, ("through",))
    journal = cmds._journal_of(request)
    through = whole_field(request, "through", journal.released_n, journal.last_n)
    logbook = cmds.app.logbook
    journal.release(through, None if logbook is None else logbook.stamp(cmds.app, {}))
    if logbook is not None:
        logbook.check_space(cmds.app)  # room again: arming is no longer refused
    return {"released_n": journal.released_n, "full": journal.full}


def _restart(cmds, request, now_ms):
    """Reset the chip; with "maintenance": true, into a maintenance boot (no loop, no watchdog),
    which is how `laserctl deploy` reaches a running board's REPL before its watchdog bites."""
    check_fields(request, ("maintenance",))
    maintenance = request.get("maintenance", False)
    if not isinstance(maintenance, bool):
        raise CommandError("restart.maintenance: must be true or false, got %r" % (maintenance,))
    cmds._between_sessions(request)
    app = cmds.app
    if maintenance:
        if app.flash is None:
            raise CommandError("restart: this device has no flash for the maintenance flag")
        write_atomic(app.flash, MAINTENANCE_FLAG, b"laserctl\n")
        cmds._journal_append({"ev": "service", "action": "maintenance"})
    app.restart_requested = True  # the loop resets the chip after this reply is out
    return {"restarting": True, "maintenance": maintenance}


HANDLERS = {"logout": _logout, "calibrate": _calibrate, "cal_point": _cal_point, "limits": _limits,
            "pin": _pin, "journal_export": _journal_export, "journal_clear": _journal_clear,
            "restart": _restart}

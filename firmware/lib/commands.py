# The serial protocol (docs/serial.md): one JSON request per line in, one JSON reply per line out,
# {"ok": true, ...} or {"ok": false, "error": "..."}. A request that is malformed, unknown, out of
# range or not allowed now gets an error naming the problem and changes nothing.
#
# Operator commands act like the panel's buttons and never more: "arm" only arms (READY, with its
# emission warning); light still needs the footswitch released and pressed. Service commands
# (settings, PIN, journal export and release, calibration points) need a service session opened
# with the PIN; it ends after SERVICE_IDLE_MS without a request and as soon as a treatment begins
# (a calibration point is not one: the technician measures several in one session).
# A request is printable ASCII, its text too (a JSON escape may not smuggle in anything else); a
# reply is ASCII JSON (link.dumps), whatever the request held.
import json

import heap
from controller import COMPLETE, EMITTING, FAULT, PAUSED, READY, STANDBY, STATE_NAMES
from fields import CommandError, check_fields, is_whole, text_field, whole_field
from flash import write_atomic
from link import NOT_TEXT, TOO_LONG, LineReader, dumps
from micropython import const
from records import ACK, ARM, DISARM, RESET
from ticks import ticks_diff

SERVICE_IDLE_MS = const(300000)  # a service session left idle this long closes
MAX_PIN_TRIES = const(5)  # wrong PINs in a row before the lockout ...
LOCKOUT_MS = const(900000)  # ... which lasts this long (counted again from boot after a reset)
JOURNAL_PAGE = const(4)  # records per journal reply: a reply stays short on a 115200 baud port
MAX_DEPTH = const(4)  # objects and lists in a request: {"points": [[duty, W], ...]} is 3 deep
_IN_SESSION = (READY, EMITTING, PAUSED)
_BUTTON_COMMANDS = {"arm": ARM, "disarm": DISARM, "ack": ACK, "reset": RESET}


# Ctrl-C: what a terminal sends to stop a program; Ctrl-A, -B, -D, -E: the REPL's raw mode, friendly
# mode, soft reset and paste mode. Named in the refusal: whoever typed one wanted a REPL.
_CONTROL_NAMES = {3: " (Ctrl-C)", 1: " (Ctrl-A)", 2: " (Ctrl-B)", 4: " (Ctrl-D)", 5: " (Ctrl-E)"}


def _check_request(request, escaped):
    """Raise CommandError if the parsed request nests deeper than MAX_DEPTH or, if its line held
    an escape (`escaped`; else its bytes were checked already), a string in it (keys too) holds
    a character outside printable ASCII. A walk with its own stack: the firmware never recurses
    over what a request holds (a deep nesting would exhaust the chip's 16 KB stack, in the
    loop)."""
    pending = [(request, None, 1)]
    while pending:
        value, key, depth = pending.pop()
        if isinstance(value, str):
            for ch in value if escaped else ():
                if not " " <= ch <= "~":
                    raise CommandError("%s: text must be printable ASCII, found \\u%04x"
                                       % (key or "a field name", ord(ch)))
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise CommandError("%s: nested deeper than %d" % (key, MAX_DEPTH))
            if isinstance(value, dict):
                for name in value:
                    pending.append((name, None, depth))
                    pending.append((value[name], name, depth + 1))
            else:
                for item in value:
                    pending.append((item, key, depth + 1))


class Commands:
    """Reads requests with `read_byte` (see link.LineReader), acts on `app` (app.App), queues
    each reply as one line in `outbox` (link.Outbox). A request is taken only when the outbox is
    ready for its reply: until then it waits in the port. `pin_failures`: wrong PINs in a row
    found in the journal at boot (a reset does not wipe the count)."""

    clock_interval_s = 600  # after a setting of the clock, the next one only this much later

    def __init__(self, app, read_byte, outbox, now_ms, pin_failures=0):
        self.app = app
        self.lines = LineReader(read_byte)
        self.outbox = outbox
        self._ready = outbox.ready  # bound once: binding a method allocates, poll() runs each tick
        self.service_open = False
        self._service_last_ms = now_ms
        self.pin_failures = pin_failures
        self._lockout_from_ms = now_ms  # a lockout found at boot runs from the boot
        self._pending = None  # (request, state before, counters before) of a button command
        self._before_point = None  # (treatment, selection) to restore after a calibration point
        self._clock_set_up_s = None  # uptime of the last setting of the clock (None: none yet)
        self.requests = 0  # lines taken: the loop collects the heap after a tick that took one

    # -- the loop's two calls ------------------------------------------------------------------

    def poll(self, now_ms):
        """After the tick's outputs are applied (and finish()): end an idle or interrupted
        service session, then take one request, if a whole line is waiting. A button command is
        passed to the next tick's step in app.inputs.command and answered by that tick's
        finish(); every other request is answered here."""
        state = self.app.controller.state
        if self._before_point is not None and state not in _IN_SESSION:
            self._end_point()
        treating = state in _IN_SESSION and self._before_point is None
        if self.service_open and (treating or
                                  ticks_diff(now_ms, self._service_last_ms) >= SERVICE_IDLE_MS):
            self._close_service("a treatment began" if treating else "idle timeout")
        if not self._ready():
            return  # the port is still busy with earlier lines: the request waits
        line = self.lines.poll()
        if line is None:
            return
        self.requests += 1
        request = None
        try:
            request = self._parse(line)
            name = request["cmd"]
            if name in _BUTTON_COMMANDS:
                self._press(request, name)
                return
            handler = _OPERATOR.get(name)
            if handler is None:
                if name not in _SERVICE:
                    raise CommandError("unknown command %r (known: %s)" % (name, ", ".join(
                        sorted(list(_OPERATOR) + list(_BUTTON_COMMANDS) + list(_SERVICE)))))
                if not self.service_open:
                    raise CommandError('%s: a service command: open a service session first '
                                       '({"cmd": "service", "pin": "..."})' % name)
                self._service_last_ms = now_ms
                handler = _service_handler(name)
            fields = handler(self, request, now_ms)
            if self._pending is None or self._pending[0] is not request:
                self._reply(request, fields)  # else finish() answers, after the step
        except CommandError as e:
            self._reply(request, None, str(e))

    def finish(self, now_ms):
        """After the step and the outputs, before poll(): answer the button command the step
        was given (the last tick's poll took it), from what it did."""
        if self._pending is None:
            return
        request, state_was, refusals_was, fault_was = self._pending
        self._pending = None
        self.app.inputs.command = None
        c = self.app.controller
        name = request["cmd"]
        now = STATE_NAMES[c.state]
        error = None
        if name in ("arm", "cal_point") and c.state != READY:
            error = "arm refused: %s" % (c.refusal if c.refusals != refusals_was else
                                         "the state is %s" % now)
        elif name == "reset" and c.state == FAULT and state_was == FAULT:
            error = "reset refused: %s stays latched while its cause is present" % fault_was
        elif name not in ("arm", "cal_point") and c.state == state_was and \
                not (name == "ack" and c.silenced):
            error = "%s: nothing to do in %s" % (name, now)
        fields = {"state": now}
        if name == "cal_point":
            if error:
                self._end_point()
            else:
                point = self.app.treatment
                fields.update(duty=point.duty_u16, time_s=point.time_s,
                              power_w=round(point.power_w, 3))
        self._reply(request, None if error else fields, error)

    def abandon(self):
        """The tick failed: its button command is answered with an error, never retried."""
        if self._pending is not None:
            request, self._pending = self._pending[0], None
            try:
                self._reply(request, None, "%s: the tick failed (see the fault)" % request["cmd"])
            except MemoryError:
                pass  # the fault line tells the story; the host times out on this request

    # -- requests ------------------------------------------------------------------------------

    def _parse(self, line):
        if line is TOO_LONG:
            raise CommandError("line too long: a request is one line of at most %d bytes"
                               % self.lines.max_line)
        if line is NOT_TEXT:
            byte = self.lines.bad_byte
            name = _CONTROL_NAMES.get(byte)
            raise CommandError("byte 0x%02x%s at column %d: a request is one line of printable "
                               "ASCII%s" % (byte, name or "", self.lines.bad_column,
                                            "; the REPL is only in a maintenance boot "
                                            "(docs/serial.md)" if name else ""))
        try:
            request = json.loads(line)
        except (ValueError, UnicodeError) as e:
            raise CommandError("not JSON: %s" % e)
        if not isinstance(request, dict):
            raise CommandError('a request is a JSON object: {"cmd": "status"}')
        _check_request(request, b"\\" in line)
        name = request.get("cmd")
        if not isinstance(name, str):
            raise CommandError('cmd: missing or not text: {"cmd": "status"}')
        ident = request.get("id")
        if ident is not None and (not (is_whole(ident) or isinstance(ident, str))
                                  or len(str(ident)) > 32):
            raise CommandError("id: must be a number or text of at most 32 characters")
        return request

    def _reply(self, request, fields, error=None):
        reply = {"ok": error is None}
        if error is not None:
            reply["error"] = error
        if isinstance(request, dict):
            if request.get("cmd"):
                reply["cmd"] = request["cmd"]
            if "id" in request and not isinstance(request["id"], (dict, list)):
                reply["id"] = request["id"]
        if fields:
            reply.update(fields)
        # poll() takes a request only with the line queue empty: its reply fits, or goes as the
        # long line; a button command's, answered by the next tick's finish(), is short.
        self.outbox.line(dumps(reply))

    def _press(self, request, name):
        check_fields(request, ())
        c = self.app.controller
        if name == "arm" and c.state != STANDBY:
            raise CommandError("arm: only from STANDBY (the state is %s)" % STATE_NAMES[c.state])
        if name == "disarm" and c.state not in _IN_SESSION:
            raise CommandError("disarm: no session to end (the state is %s)"
                               % STATE_NAMES[c.state])
        self._pass_to_step(request, _BUTTON_COMMANDS[name])

    def _pass_to_step(self, request, command):
        """The next tick's step acts on `command` as on a button's edge; that tick's finish()
        answers `request`."""
        c = self.app.controller
        self.app.inputs.command = command
        self._pending = (request, c.state, c.refusals, c.fault_code)

    def open_service(self, pin, now_ms, via=None):
        """Open a service session with the PIN (the serial `service` request), or with `via`
        ("panel": its PIN screen) only check the PIN for that one's read-only pages, the serial
        port's session left as it was. Wrong PINs are counted, journalled and locked out alike.
        CommandError says why it stays closed."""
        if self.pin_failures >= MAX_PIN_TRIES:
            left_ms = LOCKOUT_MS - ticks_diff(now_ms, self._lockout_from_ms)
            if left_ms > 0:
                raise CommandError("service: locked after %d wrong PINs; try again in %d s"
                                   % (self.pin_failures, left_ms // 1000 + 1))
        settings = self._settings({"cmd": "service"})
        if not isinstance(pin, str) or not settings.check_pin(pin):
            self.pin_failures += 1
            self._lockout_from_ms = now_ms
            self._journal_append({"ev": "pin_wrong", "failures": self.pin_failures})
            left = MAX_PIN_TRIES - self.pin_failures
            raise CommandError("service: wrong PIN (%s)" % (
                "%d tries left" % left if left > 0 else
                "locked for %d s" % (LOCKOUT_MS // 1000)))
        self._between_sessions({"cmd": "service"})
        self.pin_failures = 0
        if via is not None:
            self._journal_append({"ev": "service_open", "via": via})
            return
        self.service_open = True
        self._service_last_ms = now_ms
        self._journal_append({"ev": "service_open"})

    def _end_point(self):
        """Back to the treatment that was selected before the calibration point."""
        treatment, selection = self._before_point
        self._before_point = None
        self.app.select(treatment, selection)

    def _close_service(self, why):
        self.service_open = False
        self.outbox.event_once(dumps({"ev": "service", "open": False, "why": why}))

    def _journal_append(self, record):
        # Through the logbook: a record that fills the journal, or one the flash refuses,
        # blocks new sessions there, as the loop's own records do.
        logbook = self.app.logbook
        if logbook is not None:
            logbook.append(self.app, record)

    def _settings(self, request):
        settings = self.app.settings
        if settings is None:
            raise CommandError("%s: this device has no settings store" % request["cmd"])
        return settings

    def _between_sessions(self, request):
        state = self.app.controller.state
        if state not in (STANDBY, COMPLETE, FAULT):
            raise CommandError("%s: only between sessions (the state is %s)"
                               % (request["cmd"], STATE_NAMES[state]))

    def _journal_of(self, request):
        journal = self.app.journal
        if journal is None:
            raise CommandError("%s: this device keeps no journal" % request["cmd"])
        return journal

    def _page(self, request, newest):
        """The journal and the lines of one page: `count` (1..JOURNAL_PAGE) records from
        `from`; by default the newest ones, or the oldest on the flash."""
        check_fields(request, ("from", "count"))
        journal = self._journal_of(request)
        # Reading scans the files from their start (tens of ms on the chip): never in a session.
        self._between_sessions(request)
        count = whole_field(request, "count", 1, JOURNAL_PAGE, JOURNAL_PAGE)
        default = max(1, journal.last_n - count + 1) if newest else journal.first_n or 1
        return journal, journal.read(whole_field(request, "from", 1, 1 << 30, default), count)


# -- operator commands -------------------------------------------------------------------------


def _status(cmds, request, now_ms):
    check_fields(request, ())
    app = cmds.app
    fields = app.recorder.status_fields(app)
    fields["selected"] = app.selection
    fields["service"] = cmds.service_open
    fields["device"] = app.device_id
    fields["version"] = app.version
    fields["image"] = app.image
    fields["manifest"] = app.manifest_id
    if app.settings is not None:
        fields["settings"] = app.settings.describe()
    if app.journal is not None:
        j = app.journal
        fields["journal"] = {"last_n": j.last_n, "released_n": j.released_n, "full": j.full}
    return fields


# The wall clock's range a host may set: a clock before 2024 or from 2100 on is a host's mistake.
_CLOCK_MIN_S = 1704067200  # 2024-01-01T00:00:00Z
_CLOCK_MAX_S = 4102444799  # 2099-12-31T23:59:59Z
_CLOCK_SLACK_S = 2  # a clock within this of the host's is left alone: no record, no jump


def _clock(cmds, request, now_ms):
    """Read the wall clock, or set it (`utc_s`, seconds since 1970-01-01 UTC) between sessions.
    A change of more than _CLOCK_SLACK_S, or the first setting since power-on, is journaled with
    the time it replaced (docs/serial.md, *The clock*)."""
    check_fields(request, ("utc_s",))
    app = cmds.app
    before_s = app.hw.wall_clock_s()
    if "utc_s" not in request:
        return {"utc_s": before_s}
    utc_s = whole_field(request, "utc_s", _CLOCK_MIN_S, _CLOCK_MAX_S)
    cmds._between_sessions(request)
    if before_s is not None and -_CLOCK_SLACK_S <= utc_s - before_s <= _CLOCK_SLACK_S:
        return {"utc_s": before_s, "set": False}
    # Each setting is a record: without a limit, a host alternating two times would fill the
    # journal and stop every treatment until the service exports it. The first setting since
    # power-on, and any within a service session, are free.
    last_s = cmds._clock_set_up_s
    if last_s is not None and not cmds.service_open and \
            app.uptime_s - last_s < cmds.clock_interval_s:
        raise CommandError("clock: set %d s ago; again after %d s, or in a service session"
                           % (app.uptime_s - last_s, cmds.clock_interval_s))
    cmds._clock_set_up_s = app.uptime_s
    problem = app.hw.set_wall_clock(utc_s)
    record = {"ev": "clock", "from_s": before_s}
    reply = {"utc_s": utc_s, "set": True, "from_s": before_s}
    if problem is not None:  # the RTC is set; the battery-backed clock kept its time
        record["rtc"] = reply["rtc"] = problem
    cmds._journal_append(record)  # stamped with the new time
    return reply


def _list(cmds, request, now_ms):
    check_fields(request, ())
    import protocols

    try:
        library = protocols.load(cmds.app.library_path)
    except ValueError as e:
        raise CommandError("list: %s" % e)
    finally:
        heap.forget("protocols")
    return {"protocols": protocols.names(library), "selected": cmds.app.selection}


def _select(cmds, request, now_ms):
    check_fields(request, ("protocol", "skin_type"))
    name = text_field(request, "protocol")
    skin_type = whole_field(request, "skin_type", 1, 6, 1) if "skin_type" in request else None
    app = cmds.app
    try:
        treatment = preview_preset(app, name, skin_type)
    except ValueError as e:
        raise CommandError(str(e) if str(e).startswith("select:") else "select: %s" % e)
    selection = apply_preset(app, name, skin_type, treatment)
    return {"selected": selection, "power_w": treatment.power_w, "target_j": treatment.target_j,
            "time_s": round(treatment.target_j / treatment.power_w, 1)}


# -- choosing a preset: the serial `select` and the operator panel (panel.py) alike ---------------


def _only_in_standby(app, what):
    if app.controller.state != STANDBY:
        raise CommandError("%s: only in STANDBY (the state is %s)"
                           % (what, STATE_NAMES[app.controller.state]))


def preview_preset(app, name, skin_type):
    """The Treatment preset `name` gives at `skin_type` (1..6 or None) on this device, not yet
    selected. ValueError (CommandError where the state forbids it) says why there is none."""
    _only_in_standby(app, "select")
    import protocols
    import treatment as treatment_module

    # The library (several KB, parsed from the file) is garbage once the spec is out of it. A
    # collection before it and one after it put the treatment's objects, which live until the
    # next select, low in the heap instead of among the library's remains, where they would split
    # the free space (`python -m host_tools.heap_probe`, docs/chip.md). The parse runs in a
    # function of its own: MicroPython's collector scans this frame whole, and a reference to the
    # library left in it would keep the library alive through the collection. Only in STANDBY:
    # no light to delay.
    heap.collect()
    try:
        spec = _preset_spec(protocols, app.library_path, name, skin_type)
    finally:
        heap.forget("protocols")
    heap.collect()
    return treatment_module.for_board(spec, app.board)


def apply_preset(app, name, skin_type, treatment):
    """Select `treatment` (preview_preset's for `name` at `skin_type`), kept in the treatment
    file for the next boot. Returns the selection as the journal and status name it."""
    _only_in_standby(app, "select")
    selection = {"protocol": name}
    if skin_type is not None:
        selection["skin_type"] = skin_type
    if app.flash is not None:
        write_atomic(app.flash, app.treatment_path, json.dumps(selection).encode())
    app.select(treatment, selection)
    return selection


def preset_index(app):
    """[(region, condition, preset name)] of the preset library, region and condition as bytes
    for the panel's screens. ValueError if the library is invalid."""
    heap.collect()
    index = _index_of(app.library_path)
    heap.collect()
    return index


def _index_of(path):
    import protocols

    try:
        return [(p["region"].encode(), p["condition"].encode(), p["name"])
                for p in protocols.load(path)["protocols"]]
    finally:
        heap.forget("protocols")


def _preset_spec(protocols, path, name, skin_type):
    """The treatment spec of preset `name` in the library at `path` (see preview_preset)."""
    return protocols.spec_for(protocols.load(path), name, skin_type)


def _journal(cmds, request, now_ms):
    """The operator's view: the records' contents, a page at a time, newest last."""
    import journal as journal_module

    journal, lines = cmds._page(request, True)
    return {"records": [journal_module.parse(line)[2] for line in lines],
            "last_n": journal.last_n}


# -- the service session and its commands --------------------------------------------------------


def _service(cmds, request, now_ms):
    check_fields(request, ("pin",))
    cmds.open_service(request.get("pin"), now_ms)
    return {"service": True, "idle_timeout_s": SERVICE_IDLE_MS // 1000}


# The service session's commands: service.py, imported for the one asked for and dropped after.
_SERVICE = ("logout", "calibrate", "cal_point", "limits", "pin", "journal_export", "journal_clear",
            "restart")


def _service_handler(name):
    """The handler of service command `name` (service.py): the module is imported for it and
    dropped from the modules again, so that its code holds no heap between requests."""
    import service

    try:
        return service.HANDLERS[name]
    finally:
        heap.forget("service")


# Anyone may ask for these; "service" is the door to the rest, behind the PIN.
_OPERATOR = {"status": _status, "list": _list, "select": _select, "journal": _journal,
             "service": _service, "clock": _clock}

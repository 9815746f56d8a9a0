# The type checks of the values the firmware reads from JSON (the board file, a treatment, the
# preset library, the settings, a serial request, the journal), defined once. JSON's true and
# false are bool, which CPython counts as an int (MicroPython does not): never a number here, so
# that the host tools, which check with this same code on CPython, accept what the device does.
# Each caller says what it wanted in its own error message (the field, the range, the unit);
# a serial request's fields are checked, and refused, by the functions at the end.


def is_whole(value):
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    """An int or a float, not a bool. NaN and the infinities are numbers here: the caller's
    range or finiteness check refuses them, and says so."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- a serial request's fields (commands.py, service.py) ------------------------------------------


class CommandError(ValueError):
    """A serial request refused: the reply's error says why, naming the field."""


def check_fields(request, allowed):
    """CommandError if `request` holds a field other than `allowed` (and cmd, id)."""
    for key in request:
        if key not in allowed and key not in ("cmd", "id"):
            raise CommandError("%s: unknown field %r (known: %s)" % (
                request["cmd"], key, ", ".join(allowed) if allowed else "none"))


def whole_field(request, key, low, high, default=None):
    """The request's field `key`, a whole number within low..high (`default` if absent)."""
    value = request.get(key, default)
    if not is_whole(value) or not low <= value <= high:
        raise CommandError("%s.%s: must be a whole number within %d..%d, got %r"
                           % (request["cmd"], key, low, high, value))
    return value


def text_field(request, key):
    """The request's field `key`, text that is not empty."""
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise CommandError("%s.%s: must be text, got %r" % (request["cmd"], key, value))
    return value

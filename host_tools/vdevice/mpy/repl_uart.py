# The ESP32's REPL UART (UART0, the USB serial port) as a write to sys.stdout meets it, for the
# virtual device: a 128-byte transmit FIFO that the line empties at the board's baud rate (8N1:
# ten bits a byte), and a write that does not fit waits until the rest does, checking once a
# FreeRTOS tick. That is uart_stdout_tx_strn in MicroPython's ports/esp32/uart.c (v1.28): write
# what fits into the FIFO, ulTaskNotifyTake(pdFALSE, 1) (a sleep to the next tick), again. The
# wait is virtual time: the world runs on meanwhile (inputs change, the watchdog may bite), and
# the firmware finds its tick that much later, as on the chip.
#
# The firmware reaches the UART through `import sys` (hw.py: sys.stdout.buffer.write). `sys` is
# built into the interpreter and cannot be replaced by a file as `machine` and `time` are, so
# install() puts a stand-in into sys.modules, which an import looks up first: its stdout is this
# UART, everything else is the real sys. print() does not pass through it (the interpreter writes
# it in C), which is why the firmware never prints (tests/test_firmware_on_micropython.py).
#
# Kinder than the chip in one way only: text written with sys.stdout.write is charged byte for
# byte, where the chip's turns each "\n" into "\r\n". Unkinder in one: a byte leaves the FIFO when
# its last bit is out, where the chip's moves to the shift register a byte earlier.
import sys as _sys

import simworld

_sys = getattr(_sys, "real", _sys)  # imported again under the stand-in: the real one
FIFO_BYTES = 128  # SOC_UART_FIFO_LEN on the ESP32
RTOS_TICK_US = 10000  # CONFIG_FREERTOS_HZ = 100: ESP-IDF's default, which the ESP32 port keeps
_US = 1000000


class ReplUart:
    """The UART of `world` at `baud`. `sink(buf, off, n)` receives the bytes as they enter the
    FIFO (default: the interpreter's real stdout, where the host reads the port). Counts what it
    carried and what it made the firmware wait: `bytes`, `waits`, `waited_us`, `longest_wait_us`.

    Whole numbers only, all small (a wait is under 2**30 us on the 32-bit chip interpreter too):
    the line's progress on the byte it is sending is kept in us x bytes/s."""

    def __init__(self, world, baud, sink=None):
        if not isinstance(baud, int) or baud < 10:
            raise ValueError("serial.baud: a whole number of bits per second, got %r" % (baud,))
        self._world = world
        self.baud = baud
        self._bytes_per_s = baud // 10
        self._empty_us = FIFO_BYTES * _US // self._bytes_per_s + 1  # a full FIFO's time out
        self._sink = sink
        self._level = 0  # bytes in the FIFO at _at_us
        self._at_us = world.now_us
        self._progress = 0  # the line's progress on the FIFO's first byte, in us x bytes/s
        self.bytes = 0
        self.waits = 0
        self.waited_us = 0
        self.longest_wait_us = 0

    def level(self):
        """Bytes in the FIFO now (not yet wholly sent)."""
        self._follow(self._world.now_us)
        return self._level

    def _follow(self, now_us):
        """Empty the FIFO by what the line sent since the last look."""
        elapsed = now_us - self._at_us
        self._at_us = now_us
        if self._level == 0:
            return
        if elapsed >= self._empty_us:
            self._level = self._progress = 0
            return
        progress = self._progress + elapsed * self._bytes_per_s
        sent = progress // _US
        if sent >= self._level:
            self._level = self._progress = 0
        else:
            self._level -= sent
            self._progress = progress - sent * _US

    def write(self, buf, off, n):
        """uart_stdout_tx_strn: returns once all n bytes are in the FIFO."""
        w = self._world
        start = w.now_us
        if w.reset_at(start):
            # A reset at this instant (a power cut, the watchdog, machine.reset): the simulation
            # still runs the firmware's finally blocks, which the chip would not. What they write
            # costs nothing, so that the reset happens when it did.
            self._send(buf, off, n)
            return n
        self._follow(start)
        total = n
        while True:
            take = min(n, FIFO_BYTES - self._level)
            if take:
                self._send(buf, off, take)
                off += take
                n -= take
                self._level += take
            if not n:
                break
            wake_us = (w.now_us // RTOS_TICK_US + 1) * RTOS_TICK_US
            end_us = w.end_us()
            if end_us is not None and wake_us >= end_us:
                # The scenario ends within this wait: the rest goes out at once, so that the
                # report has every line the firmware wrote (the end is not a power cut).
                self._send(buf, off, n)
                self._level = FIFO_BYTES
                break
            w.advance_to(wake_us)  # the world goes on; the watchdog may reset the chip here
            self._follow(w.now_us)
        waited = w.now_us - start
        if waited:
            self.waits += 1
            self.waited_us += waited
            self.longest_wait_us = max(self.longest_wait_us, waited)
        return total

    def rebase(self, shift_us):
        """The world moved its origin (simworld.World._rebase) up to now: the FIFO was last
        looked at now (level() first), shift_us fewer microseconds after the new origin."""
        self._at_us -= shift_us

    def _send(self, buf, off, n):
        self.bytes += n
        if self._sink is not None:
            self._sink(buf, off, n)
        else:
            _sys.stdout.buffer.write(buf, off, n)

    def stats(self):
        return {"baud": self.baud, "bytes": self.bytes, "waits": self.waits,
                "waited_us": self.waited_us, "longest_wait_us": self.longest_wait_us}


class _Buffer:
    """sys.stdout.buffer: MicroPython's stream write(buf), write(buf, max_len) or write(buf, off,
    max_len), to the world's UART. Allocates nothing (no *args): the bench counts what the
    firmware's tick allocates, and this runs inside it."""

    def write(self, buf, a=-1, b=-1):
        off, n = 0, a  # (not a conditional tuple: that would allocate one on every write)
        if b >= 0:
            off, n = a, b
        size = len(buf) - off
        return simworld.WORLD.uart.write(buf, off, size if n < 0 or n > size else n)


class _Stdout:
    """sys.stdout: the same UART (text is written as its UTF-8 bytes)."""

    def __init__(self):
        self.buffer = _Buffer()

    def write(self, text):
        data = text.encode() if isinstance(text, str) else text
        return self.buffer.write(data, 0, len(data))

    def flush(self):
        pass


class _Sys:
    """The stand-in for sys: stdout is the UART, the rest is the real module's."""

    def __init__(self):
        self.real = _sys
        self.stdout = _Stdout()

    def __getattr__(self, name):
        return getattr(_sys, name)


def install():
    """From now on `import sys` gives the stand-in (modules imported before keep the real one)."""
    if not isinstance(_sys.modules.get("sys"), _Sys):
        _sys.modules["sys"] = _Sys()

# The dosimeter counts only while emission was applied, in integers, across the tick wrap.
from dosimeter import Dosimeter
from ticks import ticks_add


def test_counts_only_while_on():
    d = Dosimeter()
    d.applied(False, 0, 0)
    d.account(1000)
    assert d.energy_mj == 0
    d.applied(True, 10000000, 1000)  # 10 W
    d.account(1010)
    assert d.energy_mj == 100 and d.emitting_ms == 10
    d.applied(False, 0, 1010)
    d.account(5000)
    assert d.energy_mj == 100 and d.emitting_ms == 10


def test_fractions_are_carried_not_lost():
    d = Dosimeter()
    d.applied(True, 333333, 0)  # 0.333333 W: 3.33333 mJ per 10 ms tick
    t = 0
    for _ in range(3000):
        t += 10
        d.account(t)
        d.applied(True, 333333, t)
    assert d.energy_mj == 9999  # 333333 uW x 30 s = 9999.99 mJ, truncated only once


def test_counts_across_the_tick_wrap():
    d = Dosimeter()
    start = (1 << 30) - 25
    d.applied(True, 1000000, start)
    d.account(ticks_add(start, 50))  # wraps through 0
    assert d.energy_mj == 50 and d.emitting_ms == 50

"""The exhaustive search's command line: `python tests/search` (make explore, make verify).

Exit status 0 when the oracle held at every tick, 1 when it did not (the input sequences that show
it are printed), 2 when the exploration itself is invalid (an absolute-time dependence, or a merge
check that failed: its merging assumptions did not hold)."""

import argparse
import sys

from search.boards import BOARDS
from search.explorer import ExplorationError, explore


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Every input sequence up to a depth from every reachable abstract state "
                    "of the real firmware, with the safety oracle checked after every tick.")
    parser.add_argument("--depth", type=int, default=8,
                        help="symbols per sequence of the inputs' search (default 8; 0: none)")
    parser.add_argument("--monitor-depth", type=int, default=3,
                        help="symbols per sequence of the monitors' search (default 3; 0: none)")
    parser.add_argument("--board", choices=sorted(BOARDS), default="quick",
                        help="quick: the shortest timings a board may have (default); sim: "
                             "the sim board's (its minutes-long timeouts make phase 1 slow)")
    parser.add_argument("--progress", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)
    progress = (lambda line: print(line, file=sys.stderr, flush=True)) if args.progress else None
    status = 0
    for depth, monitors in ((args.depth, False), (args.monitor_depth, True)):
        if depth < 1:
            continue
        try:
            report = explore(depth, args.board, progress=progress, monitors=monitors)
        except ExplorationError as e:
            print("exploration invalid: %s" % e)
            return 2
        print("\n".join(report.lines()))
        if report.mismatches:
            return 2
        status = status or (1 if report.violations else 0)
    return status


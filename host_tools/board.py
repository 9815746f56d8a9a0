"""`laserctl board check NAME...`: validate board files with the firmware's own checks
(firmware/lib/board.py), as the device does at boot: a board the host accepts is one the device
accepts.

Exit status: 0 when every board is valid; 1 when one is not (each is named with its problem).
"""

import sys

from host_tools import vdevice


def main(args):
    status = 0
    for name in args.boards:
        try:
            path, _ = vdevice.load_board(name)
        except ValueError as e:
            print("%s: INVALID: %s" % (name, e), file=sys.stderr)
            status = 1
        else:
            print("%s: ok (%s)" % (name, path.name))
    return status

"""Run a Python script with this process's wall clock off by OFFSET seconds.

    python skewed_clock.py OFFSET SCRIPT [ARGS...]

What libfaketime does for a whole process, for the one clock the node client's doctor
reads (``time.time``): the tests use it to put a node's clock ahead of or behind the
local host's, which is how a VM without working time sync looks. Everything else about
the run (IMDS, the function, the network) is real.
"""

import runpy
import sys
import time


def main() -> None:
    offset = float(sys.argv[1])
    script = sys.argv[2]
    real_time = time.time
    time.time = lambda: real_time() + offset  # the module attribute the client calls
    sys.argv = [script, *sys.argv[3:]]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()

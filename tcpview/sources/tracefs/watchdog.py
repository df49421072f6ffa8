"""The process that removes a trace instance when its owner died without removing it.

Run as ``python -m tcpview.sources.tracefs.watchdog PATH [--unmount]`` by
:func:`tcpview.sources.tracefs.instance.TraceInstance.open`, with a pipe from the owner on
standard input. It reads until the pipe closes, which the kernel does when the owner ends in
any way (exit, SIGTERM, SIGKILL, a crash); then it removes the instance if it is still there
(and unmounts tracefs if the owner mounted it). Terminal signals do not reach it (it runs in
a session of its own) and it ignores SIGINT and SIGTERM, so it outlives its owner.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    """Wait for standard input to close, then remove the instance ``argv[0]``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path = Path(argv[0])
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except OSError:
        pass
    # the owner's files close as it dies: a busy instance frees within moments
    deadline = time.monotonic() + 5.0
    while True:
        try:
            os.rmdir(path)
            break
        except FileNotFoundError:
            break
        except OSError:
            if time.monotonic() > deadline:
                return 1
            time.sleep(0.05)
    if "--unmount" in argv[1:]:
        subprocess.run(["umount", str(path.parent.parent)], capture_output=True, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

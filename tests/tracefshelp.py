"""For the tests of the kernel's events: tracefs as the tests found it.

tcpview mounts tracefs where it is not mounted, and its last user unmounts it; when tests
overlap (one instance still open as another's watchdog unmounts), the mount can stay. The
fixture :func:`tracefs_as_found` (``autouse`` in each such test module) unmounts it after the
module when it was not mounted before and no tcpview instance is left in it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def tracefs_mounts() -> list[str]:
    """Where tracefs is mounted now."""
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == "tracefs":
            out.append(parts[1])
    return out


@pytest.fixture(scope="module", autouse=True)
def tracefs_as_found() -> Iterator[None]:
    """Unmount tracefs after the module if the module's tests mounted it."""
    before = set(tracefs_mounts())
    yield
    for path in set(tracefs_mounts()) - before:
        inst = Path(path) / "instances"
        if inst.is_dir() and any(p.name.startswith("tcpview-") for p in inst.iterdir()):
            continue  # someone's instance is still there: not ours to take away
        subprocess.run(["umount", path], capture_output=True, check=False)

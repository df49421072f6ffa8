"""Cached kernels load without numba's compiler set-up (tcpview.jitload), and give the same
answers; a compile afterwards still gets the whole set-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import REPO, many_connections, write_frames_pcap

from tcpview.engine.warm import PYTHON_MAX_PACKETS

CHILD = """
import contextlib, io, json, sys
from numba.core import event
from tcpview.cli import main

compiled = []

class Count(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__name__)

    def on_end(self, ev):
        pass

event.register("numba:compile", Count())
out = io.StringIO()
with contextlib.redirect_stdout(out):
    main(["summary", sys.argv[1], "--json"])
set_up = "numba.np.arraymath" in sys.modules  # an implementation the compiler's set-up registers
loaded = {"numba": "numba" in sys.modules, "set_up": set_up, "compiled": list(compiled)}

import math
import numba
import numpy as np

@numba.njit
def f(x):  # a new kernel: compiled here, with the whole set-up
    return np.sum(x) + math.sqrt(4.0)

after = {"value": float(f(np.arange(4.0))), "set_up": "numba.np.arraymath" in sys.modules}
print(json.dumps({"summary": json.loads(out.getvalue()), "loaded": loaded, "after": after}))
"""


def test_cached_kernels_load_without_the_compilers_set_up(tmp_path):
    frames = many_connections(400)
    assert len(frames) > PYTHON_MAX_PACKETS  # read compiled
    path = str(write_frames_pcap(tmp_path / "c.pcap", frames))
    p = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, timeout=600,
                       cwd=REPO, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout)
    # compiled kernels, from the (warm) cache, and numba's implementations never registered
    assert got["loaded"] == {"numba": True, "set_up": False, "compiled": []}
    assert got["after"] == {"value": 8.0, "set_up": True}
    # the same answer as the very same code run as plain Python
    plain = subprocess.run([sys.executable, "-m", "tcpview", "summary", path, "--json"], capture_output=True,
                           text=True, timeout=600, cwd=REPO, check=True,
                           env=dict(os.environ, NUMBA_DISABLE_JIT="1"))
    assert got["summary"] == json.loads(plain.stdout)

"""The headless engine: decode frames, track both endpoints' states, keep the timeline, and
answer queries at any cursor time. Nothing here imports Textual, rich or scapy.

The folders read in the order the data flows (each imports only those before it; an
import-linter contract holds it):

- ``core/``: the table layouts and everything compiled (decode, the state machine, the
  sequence analysis, the loop that runs them over a batch, the passes readers make).
- ``timeline/``: the tables published as views, "as of t" questions, eviction under a memory
  budget, and the tracker that feeds the loop.
- ``analysis/`` and ``output/``: answers computed from a timeline, and what it is written as.
- ``player`` (the cursor), ``warm`` (compiling the kernels on first use), ``pump`` (a source
  fed to a tracker, batch by batch), ``session`` (a source, its timeline, pump and player, as
  a viewer uses them).

What the layers above (``ui``, ``cli``, ``kernel``, ``sim``) use: ``core.tcp`` (state and
flag names), ``core.model`` (the pydantic models), ``timeline.Timeline`` and
``timeline.tracker.Tracker``, ``analysis.*``, ``output.*``, ``player``, ``pump``, ``session``, ``warm``.
The other modules of ``core`` and ``timeline`` are the engine's own.
"""

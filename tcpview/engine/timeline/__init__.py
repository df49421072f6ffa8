"""The timeline: the tables the compiled loop writes, published as views that every reader
asks "as of t" questions of.

- ``view``: :class:`View`, what one publication holds (arrays and their complete lengths).
- ``reader``: :class:`Reader`, every question at a cursor time, with its caches.
- ``timeline``: :class:`Timeline`, a Reader that also publishes (and lets rows go past a
  memory budget: ``evict``).
- ``tracker``: :class:`Tracker`, feeding frames to the compiled loop batch by batch.
- ``conns``, ``conn_columns``: one connection read from the tables, and all of them as
  columns for output; ``zeek_history``: Zeek's conn_state and history replayed on demand.
"""

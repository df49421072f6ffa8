"""The kernel's own TCP events, read from tracefs without BPF.

- :mod:`.instance`: a trace instance of tcpview's own (``instances/tcpview-<pid>-<start>``),
  the tracepoints it enables, and its removal on every way out (a watchdog process removes it
  when its owner dies without cleaning up; stale ones are removed at the next start);
- :mod:`.formats`: the ring buffer's page and event headers and each event's field offsets,
  read from the instance's ``format`` files (they differ between kernels);
- :mod:`.decode`: the compiled kernel that turns ring-buffer pages into rows of
  :data:`~.decode.KEVENT`;
- :mod:`.reader`: the per-CPU ``trace_pipe_raw`` readers, lost events, and the trace clock
  turned into wall time.
"""

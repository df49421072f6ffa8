"""The resident engine: a process that keeps the interpreter, numpy, numba and the compiled
kernels loaded, and answers the headless commands of the same user at once.

Starting a process costs tcpview about 0.4 s before its first packet (the interpreter,
numpy, numba and loading each kernel from the cache), more than tshark takes for a whole
small capture. :mod:`.server` pays it once and then forks a copy of itself for each
command; :mod:`.client` (what the ``tcpview`` command runs first, importing nothing heavy)
hands the command line, the working directory, the environment and its standard input,
output and error to it over a Unix socket of the user's own, forwards Ctrl-C, and exits
with the command's status. Where no resident engine answers, the command runs as it always
did.

Only commands that read files and write text are served (``summary``, ``expert``,
``export``, ``ladder``, ``graph``, ``stream``, ``diagnose``); live captures, the viewer,
standard input and cluster runs start as before. The engine starts itself, in the
background, when a served command is typed at a terminal (``TCPVIEW_RESIDENT=1``: also
without one; ``0``: never), and ends after ten idle minutes or as soon as tcpview's sources
change.
"""

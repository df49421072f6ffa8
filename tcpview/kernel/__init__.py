"""This host's TCP sockets as the kernel reports them (``/proc/net/tcp``, what ``ss`` reads)."""

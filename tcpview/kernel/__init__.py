"""This host's TCP sockets as the kernel reports them (sock_diag netlink, what ``ss`` asks; ``/proc/net/tcp``
where netlink cannot be asked), with each socket's tcp_info and the process holding it."""

"""tcpview: a terminal UI that shows what TCP is doing."""

__version__ = "0.1.0"

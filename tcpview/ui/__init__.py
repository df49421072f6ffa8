"""The Textual UI of tcpview (``TcpviewApp`` in :mod:`tcpview.ui.app`)."""

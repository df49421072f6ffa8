"""The widgets of the tcpview screens, one module each."""

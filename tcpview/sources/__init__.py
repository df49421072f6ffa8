"""Frame sources: capture files and streams, live capture, the simulator."""

"""Live capture from a network interface: a packet socket with a memory-mapped ring."""

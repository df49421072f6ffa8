"""Frame sources: capture files and streams (:mod:`.pcap`, :mod:`.base`), live capture
(:mod:`.live`). The simulator's source is :class:`tcpview.sim.SimSource`, a layer above."""

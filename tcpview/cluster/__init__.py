"""Capture archives past one machine: the engine's loop on a Dask cluster.

A run takes several capture files (a ring, an archive) and answers as ``tcpview summary`` (and
``expert``, ``diagnose``, ``export``) of the files merged by time would, in three stages:

1. :mod:`.partition`: each file is read once, by one worker, and cut into buckets by a hash
   of each segment's unordered 4-tuple (every connection whole in one bucket);
2. :mod:`.numbering`: each frame gets its place in the merged archive (as ``mergecap``
   merges: by time, the earlier file first on a tie);
3. :mod:`.bucket`: each bucket's frames from every file, in that order, go through the
   engine's tracker on one worker, which answers the command for its connections;

and :mod:`.merge` numbers the connections in order of first packet and puts the answers
together. :mod:`.run` drives it on a Dask cluster (a local one of N processes, or an existing
scheduler), with a progress bar per stage on stderr.
"""

"""The engine's core: the table layouts and everything compiled. Imports nothing else of the
engine (an import-linter contract holds it).

- ``tcp``: TCP's states, flags and analysis bits as plain constants; ``model``: the pydantic
  models built on demand at the edges.
- ``columns``: the tables as numpy record arrays, and the codes packed into their words.
- ``decode``: frame bytes to TCP fields; ``reassembly``: IP fragments to whole TCP segments.
  ``connhash``: the 4-tuple hash table.
  ``statemachine``: the passive rules (what a segment does to both endpoints' states).
  ``transitions``: the transition log and the timer heap. ``seqanalysis``: Wireshark's
  sequence analysis, in the loop. ``loop``: the compiled loop over a batch of frames;
  ``segment``: what one TCP segment does in it, step by step.
- ``passes``: compiled passes readers make over the tables; ``rtt``: ack_rtt and bytes in
  flight, replayed per connection; ``zeek_analyzer`` (the connection) and ``zeek_endpoint``
  (one endpoint): Zeek's TCP analyzer.
"""

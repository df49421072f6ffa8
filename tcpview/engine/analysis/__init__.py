"""Answers computed from the timeline: ``query`` (the connection table as of a cursor: sort,
filter), ``conn_filter`` (the filter language every table speaks, and its check),
``expert_report`` (what ``tcpview expert`` counts), ``follow`` (Follow TCP Stream), ``graphs``
(the graphs' series and braille drawing), ``why`` (why a state changed)."""

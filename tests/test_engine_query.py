"""The questions the viewer asks of the timeline: filter terms and sort columns of the
connection list (computed in bulk, checked against each connection's own answers), and the
sentences that say why a state changed."""

from __future__ import annotations

from tcpview.engine.core.zeek_analyzer import CONN_STATES


def test_filter_query_parsing() -> None:
    from tcpview.engine.analysis.query import ConnQuery, parse_states

    assert parse_states("close-wait") == {7} and parse_states("tw") == {10}
    assert parse_states("fin_wait") == {5, 6} and parse_states("nope") == set()
    q = ConnQuery.parse("state:CLOSE_WAIT port:443 10.0.0.5 :80 is:reset id:3")
    assert q.either_states == [frozenset({7})] and q.ports == [443] and q.ips == ["10.0.0.5"]
    assert q.words == [":80"] and q.notes == ["reset"] and q.ids == [3] and not q.errors
    bad = ConnQuery.parse("state:bogus port:x is:what")
    assert len(bad.errors) == 3 and bad.empty
    # an unknown key is an error; what an IPv6 address starts with is a word
    assert ConnQuery.parse("nope:1 bogus:").errors[0].startswith("unknown key 'nope:': state: client:")
    assert len(ConnQuery.parse("nope:1 bogus:").errors) == 2
    for word in ("cafe:", "fe80::1:443", "dead:beef", "10.0.0.5:443", ":443", "[::1]:80", "*:*"):
        assert not ConnQuery.parse(word).errors, word


def test_filters_on_ports_ids_and_addresses_match_the_per_connection_rules() -> None:
    """The column passes give what ConnQuery.fields_match says for each connection."""
    from tcpview.engine.analysis.query import ConnQuery, ConnRows, endpoint_texts
    from tcpview.engine.timeline.tracker import Tracker
    from tcpview.sim import Engine, load

    tracker = Tracker()
    frames = Engine(load("busy"), 4).frames(max_seconds=4)
    tracker.feed_records((f.frame, f.ts, 1, f.data, 0, len(f.data), len(f.data)) for f in frames)
    tl = tracker.tl
    c0 = tl.conns[0]
    for text in (f"port:{c0.cport}", "port:80", f"id:3 id:{c0.id}", c0.client_ip_text(),
                 f"{c0.server_ip_text()} port:{c0.sport}", "10.1.", "is:partial", "an:retrans"):
        rows = ConnRows()
        assert not rows.set_query(text).errors
        q = ConnQuery.parse(text)
        want = [c.id for c in tl.conns
                if q.fields_match(c.id, c.cport, c.sport, endpoint_texts(c.client_text(), c.server_text()),
                                  c.notes, c.analysis_bits)]
        assert list(rows.compute(tl, None)) == want, text


def test_analysis_filter_terms_name_flags_by_wireshark_name_or_ladder_tag() -> None:
    from tcpview.engine.analysis.query import ConnQuery
    from tcpview.engine.core.tcp import Analysis

    q = ConnQuery.parse("analysis:retransmission an:dup-ack analysis:ooo an:Zero-Win analysis:window_full")
    assert not q.errors
    assert q.analysis == [Analysis.RETRANSMISSION, Analysis.DUP_ACK, Analysis.OUT_OF_ORDER, Analysis.ZERO_WINDOW,
                          Analysis.WINDOW_FULL]
    assert not q.empty
    want = ("unknown analysis 'slow': the ladder's tags retrans, fast-retrans, spurious-retrans, ooo, dup-ack, "
            "lost, ack-lost, zero-win, win-probe, win-probe-ack, win-full, win-update, keepalive, keepalive-ack, "
            "reused-ports; anomalies syn-fin, syn-rst, fin-no-ack, no-flags, xmas, bad-handshake-ack, "
            "rst-out-of-win; or Wireshark's names (retransmission, dup_ack...)")
    assert ConnQuery.parse("analysis:slow").errors == [want]
    # the kernel's socket table has no segments: the term is an error there
    assert ConnQuery.parse("analysis:retrans", without=("note", "analysis")).errors


def test_a_note_filter_sees_a_reset_that_comes_later() -> None:
    """A connection reset after the filter was typed shows up once the reset is read (the
    filter is as of the cursor, which at the end moves with what is read)."""
    from helpers import Flow

    from tcpview.engine.analysis.query import ConnRows
    from tcpview.engine.timeline.tracker import Tracker

    f = Flow(t0=1.0)
    f.handshake()
    f.c("PA", b"hi")
    tr = Tracker()
    tr.feed_records((i + 1, ts, lt, raw, 0, len(raw), len(raw)) for i, (ts, lt, raw) in enumerate(f.frames))
    rows = ConnRows()
    rows.set_query("is:reset")
    assert list(rows.compute(tr.tl, None)) == []
    n = len(f.frames)
    f.s("R")
    ts, lt, raw = f.frames[-1]
    tr.feed_frame(n + 1, ts, lt, raw)
    assert list(rows.compute(tr.tl, None)) == [0]


def test_what_the_reader_read_ahead_the_table_finds_done() -> None:
    """After ``read_ahead`` (the reading thread, after a batch), the table's facts at "now"
    are those very answers, not made again; a batch later, they are carried on, and equal
    what a timeline fed at once answers."""
    from helpers import many_connections

    from tcpview.engine.analysis.query import ConnRows, read_ahead
    from tcpview.engine.timeline.tracker import Tracker

    frames = many_connections(30)
    half = len(frames) // 2
    tr, whole = Tracker(), Tracker()
    records = [(i + 1, ts, lt, raw, 0, len(raw), len(raw)) for i, (ts, lt, raw) in enumerate(frames)]
    tr.feed_records(records[:half])
    whole.feed_records(records)
    read_ahead(tr.tl)
    v = tr.tl.view()
    states, pk = tr.tl.states_at(None, v), tr.tl.conn_stats_at(None, v)[0]
    f = ConnRows().facts(tr.tl, None)
    assert f.view is v and f.states.base is states and f.packets.base is pk
    tr.feed_records(records[half:])
    read_ahead(tr.tl)
    f, want = ConnRows().facts(tr.tl, None), ConnRows().facts(whole.tl, None)
    assert (f.states == want.states).all() and (f.packets == want.packets).all()
    assert (f.nbytes == want.nbytes).all() and f.n == want.n == 30


def test_the_rows_listed_are_drawn_with_the_facts_they_were_listed_by() -> None:
    """A batch published between the list and the drawing of its rows (the reading thread
    does not wait for the table) does not make every connection's facts again for the rows
    drawn after it: they show what they were sorted by, until the next list."""
    from helpers import many_connections

    from tcpview.engine.analysis.query import ConnRows
    from tcpview.engine.timeline.tracker import Tracker

    frames = many_connections(30)
    half = len(frames) // 2
    tr = Tracker()
    records = [(i + 1, ts, lt, raw, 0, len(raw), len(raw)) for i, (ts, lt, raw) in enumerate(frames)]
    tr.feed_records(records[:half])
    rows = ConnRows()
    rows.sort = "idle"
    listed = rows.compute(tr.tl, None)
    made = rows.facts_listed(tr.tl, None)
    assert made.n == len(listed)
    tr.feed_records(records[half:])
    assert rows.facts_listed(tr.tl, None) is made
    now = rows.facts(tr.tl, None)
    assert now is not made and now.n == 30 > made.n
    rows.compute(tr.tl, None)
    assert rows.facts_listed(tr.tl, None) is now
    assert rows.facts_listed(Tracker().tl, None).n == 0  # another timeline's: its own


def test_sorted_rows_follow_the_store_at_any_cursor() -> None:
    """Each sort column (computed in bulk and kept per cursor) orders the connections as the
    store's own per-connection answers do, at past cursors and at the end, either direction."""
    from tcpview.engine.analysis.query import SORT_KEYS, ConnRows
    from tcpview.engine.core.tcp import Analysis
    from tcpview.engine.timeline.tracker import Tracker
    from tcpview.sim import Engine, load

    tracker = Tracker()
    frames = Engine(load("busy"), 4).frames(max_seconds=6)
    tracker.feed_records((f.frame, f.ts, 1, f.data, 0, len(f.data), len(f.data)) for f in frames)
    tl = tracker.tl
    conns = tl.conns

    def payload(c, k):  # type: ignore[no-untyped-def]
        return sum(c.record(i)[4] for i in range(k))  # the payload length field

    def last_seen(c, k):  # type: ignore[no-untyped-def]
        return c.record(k - 1)[0] if k else c.first_ts

    reference = {
        "client": lambda c, t: (c.family, c.cip, c.cport),
        "server": lambda c, t: (c.family, c.sip, c.sport),
        "cstate": lambda c, t: c.states_at(t)[0],
        "sstate": lambda c, t: c.states_at(t)[1],
        "pkts": lambda c, t: c.count_at(t),
        "bytes": lambda c, t: payload(c, c.count_at(t)),
        "idle": lambda c, t: -last_seen(c, c.count_at(t)),
        "age": lambda c, t: -c.first_ts,
        "notes": lambda c, t: c.notes(t),
        "id": lambda c, t: c.id,
        # the analysis columns as of the cursor too (tests/test_cursor_columns.py checks them
        # against a fresh read up to the cursor)
        "rtt": lambda c, t: float(c.progress_at(t).irtt),
        "retr": lambda c, t: sum(1 for i in range(c.count_at(t))
                                 if (c.record(i)[10] >> 8) & Analysis.RETRANSMISSION),
        # Zeek's conn_state as of the cursor, in the order of CONN_STATES
        "zeek": lambda c, t: CONN_STATES.index(c.zeek(c.count_at(t))[0]),
        # the process holding the sockets: none known for a capture file, so all equal
        "proc": lambda c, t: 0,
        # the diagnosis's verdict as of the cursor, from a pass made afresh up to it
        "slow": lambda c, t: fresh_verdicts(t)[c.row],
    }

    def fresh_verdicts(t):  # type: ignore[no-untyped-def]
        from tcpview.engine.analysis.diagnosis import diagnose
        from tcpview.engine.timeline.reader import Reader

        got = fresh.get(t)
        if got is None:
            got = fresh[t] = diagnose(Reader(tl.view()), t).verdicts
        return got

    fresh: dict = {}
    assert set(reference) == set(SORT_KEYS)
    rows = ConnRows()
    span = tl.last_ts - tl.first_ts
    for t in (tl.first_ts + span * 0.4, None, tl.first_ts + span * 0.8, tl.first_ts + span * 0.4):
        ids = range(tl.conn_count_at(t))
        for key in SORT_KEYS:
            for reverse in (False, True):
                rows.sort, rows.reverse = key, reverse
                expected = sorted(ids, key=lambda i: reference[key](conns[i], t), reverse=reverse)
                assert list(rows.compute(tl, t)) == expected, (key, reverse, t)


def test_why_sentences() -> None:
    from tcpview.engine.analysis.why import explain, sentence

    text = explain([(0, 4, 5, "fin_sent"), (1, 4, 7, "fin_received")], sender=0)
    assert text.startswith("Client sent FIN") and "server's application must still call close()" in text
    assert "CLOSE_WAIT" in text
    assert "three-way handshake" in explain([(0, 2, 4, "handshake_ack"), (1, 3, 4, "handshake_ack")], 0)
    assert "refused" in explain([(1, 1, 0, "refused"), (0, 2, 0, "refused")], 1)
    assert "TIME_WAIT ended" in explain([(0, 10, 0, "time_wait_expired")], None)
    assert explain([], 0) == ""
    assert "LAST_ACK" in sentence("fin_sent", 1, "LAST_ACK", 1)

"""Capture archives on a Dask cluster (``FILES... --jobs N | --scheduler ADDRESS``): a real
scheduler and two worker processes on 127.0.0.1 answer as one process reading the ring's files
merged by ``mergecap`` (summary, expert, diagnose, export), however the archive is cut into
buckets and when a worker dies mid-run; the one-line errors."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from clusterhelp import Ring, make_ring
from helpers import REPO, cli, cli_here, ether_ipv4_tcp, pcap_bytes, wait_until
from livehelp import need_root

distributed = pytest.importorskip("distributed")

from tcpview.cluster import merge  # noqa: E402 (after the skip: dask is the cluster extra)
from tcpview.cluster.numbering import merged_numbers, plan, span_of, times_of  # noqa: E402
from tcpview.cluster.partition import split_file  # noqa: E402
from tcpview.cluster.run import Bars, run  # noqa: E402


@pytest.fixture(scope="module")
def ring(tmp_path_factory) -> Ring:
    """A ring of 40-packet files of real loopback traffic, and the files merged again."""
    need_root()
    for tool in ("editcap", "mergecap", "capinfos"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            pytest.skip(f"{tool} is not installed")
    return make_ring(tmp_path_factory.mktemp("ring"))


@pytest.fixture(scope="module")
def client():
    """A real scheduler and two worker processes (one thread each) on 127.0.0.1."""
    os.environ["PYTHONPATH"] = str(REPO) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH")
                                            else "")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _files(ring: Ring) -> list[str]:
    return [str(f) for f in ring.files]


def _without_source(text: str) -> dict:
    doc = json.loads(text)
    doc.pop("source")
    return doc


def test_the_ring_is_what_the_tests_need(ring):
    """Connections cross file boundaries (one lives through all of them) and a 4-tuple carries
    two connections: the cases a partition must keep whole."""
    rc, out, _ = cli_here("summary", str(ring.merged), "--json")
    conns = json.loads(out)["connections"]
    assert len(ring.files) >= 8 and len(conns) > 50
    spans = [(c["first_ts"], c["last_ts"]) for c in conns]
    rc0, out0, _ = cli_here("summary", str(ring.files[0]), "--json")
    rcn, outn, _ = cli_here("summary", str(ring.files[-1]), "--json")
    end0, startn = json.loads(out0)["last_ts"], json.loads(outn)["first_ts"]
    assert any(a <= end0 and b >= startn for a, b in spans), "no connection from the first file to the last"
    tuples = [(c["client"]["port"], c["server"]["port"]) for c in conns]
    assert len(set(tuples)) == len(tuples) - 1, "the reused 4-tuple is not two connections"


@pytest.mark.parametrize("command", [("summary", "--json"), ("summary",), ("expert", "--json"), ("expert",),
                                     ("diagnose", "--json"), ("diagnose",), ("export", "--format", "jsonl"),
                                     ("export", "--format", "csv")])
def test_the_cluster_answers_as_the_merged_file(ring, client, command):
    addr = client.scheduler.address
    rc, out, err = cli_here(command[0], *_files(ring), *command[1:], "--scheduler", addr)
    assert rc == 0, err
    rc_ref, ref, _ = cli_here(command[0], str(ring.merged), *command[1:])
    assert rc_ref == 0
    if "--json" in command:
        assert _without_source(out) == _without_source(ref)
    else:  # the same text, but for the source's name (the files, or the merged file)
        assert out.replace(", ".join(_files(ring)), str(ring.merged)) == ref
    assert "bytes read per byte of the archive" in err


@pytest.mark.parametrize("buckets", [1, 3, 7])
def test_the_answer_does_not_depend_on_the_buckets(ring, client, buckets):
    """However many buckets, every connection is whole in one (its 4-tuple in no other) and
    the merged summary is the same."""
    r = run(_files(ring), "summary", client=client, buckets=buckets, say=lambda _: None, bars=Bars(open(os.devnull, "w")))
    assert r.buckets == buckets
    seen: dict[tuple, int] = {}
    for b, a in enumerate(r.answers):
        c = a.columns
        for ends in zip(c.cip, c.cport, c.sip, c.sport, strict=True):
            key = tuple(sorted([ends[:2], ends[2:]]))
            assert seen.setdefault(key, b) == b, f"{key} in buckets {seen[key]} and {b}"
    _, ref, _ = cli_here("summary", str(ring.merged), "--json")
    assert merge.summary(r.answers, "x") == {**json.loads(ref), "source": "x"}
    assert r.bytes_read == sum(f.stat().st_size for f in ring.files)  # each byte once
    # the merge holds the garbage collector off while it makes its rows, and leaves it as it was
    assert gc.isenabled()
    gc.disable()
    try:
        assert merge.summary(r.answers, "x")["connections"] and not gc.isenabled()
    finally:
        gc.enable()
    assert merge.summary(r.answers, "x")["connections"] and gc.isenabled()


class _KillAfterReading(Bars):
    """Bars that kill the worker process holding the most of the files' buckets once every
    file is read: the trackers must get them from reading those files again."""

    def __init__(self, client) -> None:
        super().__init__(open(os.devnull, "w"))
        self.client = client
        self.killed: int | None = None
        self.lost: int = 0

    def watch(self, stage, futures, unit):
        got = super().watch(stage, futures, unit)
        if stage == "read":
            held = self.client.who_has(futures)
            counts: dict[str, int] = {}
            for addrs in held.values():
                for a in addrs:
                    counts[a] = counts.get(a, 0) + 1
            victim = max(counts, key=lambda a: counts[a])
            self.lost = counts[victim]
            pids = self.client.run(os.getpid)
            self.killed = pids[victim]
            os.kill(self.killed, signal.SIGKILL)
        return got


def _killed_mid_run_and_redone(ring: Ring, client) -> None:
    """A run on ``client`` whose busiest worker is killed once the files are read answers as
    the merged file, and the nanny starts that worker again, in a new process."""
    bars = _KillAfterReading(client)
    r = run(_files(ring), "summary", client=client, buckets=4, say=lambda _: None, bars=bars)
    assert bars.killed is not None and bars.lost > 0
    _, ref, _ = cli_here("summary", str(ring.merged), "--json")
    assert merge.summary(r.answers, "x") == {**json.loads(ref), "source": "x"}
    assert wait_until(lambda: len(client.scheduler_info()["workers"]) == 2, timeout=30)
    assert bars.killed not in client.run(os.getpid).values()


def test_a_worker_killed_mid_run_is_redone(ring, client):
    _killed_mid_run_and_redone(ring, client)


@pytest.mark.skipif(sys.platform != "linux", reason="a local cluster's workers are forked on Linux only")
def test_a_local_clusters_workers_start_with_what_this_process_loaded_and_are_started_again(ring):
    """``--jobs``' workers are forked: they start with the modules this process loaded (the
    engine; numba, imported here), where spawned ones import them again. One killed mid-run
    is started again (spawned, as Dask does by default) and the answer is the same."""
    import numba  # noqa: F401 (loaded here, before the cluster starts)

    from tcpview.cluster.run import connect

    client, cluster = connect(2, None)
    try:
        loaded = client.run(lambda: "numba" in sys.modules and "tcpview.cluster.bucket" in sys.modules)
        assert list(loaded.values()) == [True, True]
        _killed_mid_run_and_redone(ring, client)
    finally:
        client.close()
        cluster.close()


def test_jobs_starts_a_local_cluster_with_bars_and_the_dashboard(ring, tmp_path):
    # the pieces the workers hand each other are kept in a directory of the run's, removed after
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    was = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(env_tmp)
    try:
        rc, out, err = cli("summary", *_files(ring), "--jobs", "2", "--json")
    finally:
        if was is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = was
    assert rc == 0, err
    assert not [p.name for p in env_tmp.iterdir() if p.name.startswith("tcpview-cluster-")]
    _, ref, _ = cli_here("summary", str(ring.merged), "--json")
    assert _without_source(out) == _without_source(ref)
    assert "Dask dashboard: http://127.0.0.1:" in err
    for stage, total in (("read", len(ring.files)), ("track", 4)):
        assert f"tcpview: {stage:<6} [{'#' * 30}] {total}/{total}" in err, err
    assert re.search(r"tcpview: number \[#*\] (\d+)/\1 files overlapping others in time", err), err
    assert "1.00 bytes read per byte of the archive" in err


def test_an_unreadable_file_fails_the_run_in_one_line(ring, client, tmp_path):
    addr = client.scheduler.address
    notcap = tmp_path / "notes.pcap"
    notcap.write_text("not a capture\n")
    for bad in (tmp_path / "missing.pcap", notcap):
        rc, out, err = cli_here("summary", str(ring.files[0]), str(bad), "--scheduler", addr)
        assert rc == 2 and out == ""
        lines = [x for x in err.splitlines() if x.startswith("tcpview: error:")]
        assert len(lines) == 1 and str(bad) in lines[0], err
        assert "Traceback" not in err


def test_without_dask_jobs_says_how_to_install_it(ring):
    code = ("import sys; sys.modules['distributed'] = None; from tcpview.cli import main; "
            f"sys.exit(main(['summary', {str(ring.files[0])!r}, '--jobs', '2']))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        'tcpview: error: --jobs and --scheduler run on Dask, which is not installed: pip install "tcpview-tui[cluster]"']


def test_several_files_read_here_or_on_a_cluster_and_some_options_do_not_go_with_one(ring):
    rc, out, err = cli_here("summary", *_files(ring), "--json")  # without a cluster: merged here
    assert rc == 0, err
    here = json.loads(out)
    assert [c["file"] for c in here.pop("captures")] == _files(ring)  # and each file named
    _, ref, _ = cli_here("summary", str(ring.merged), "--json")
    assert _without_source(json.dumps(here)) == _without_source(ref)
    rc, _, err = cli_here("summary", *_files(ring)[:2], "--jobs", "2", "--at", "1")
    assert rc == 2 and "--at does not go with --jobs" in err
    rc, _, err = cli_here("export", *_files(ring)[:2], "--jobs", "2", "--format", "pcap")
    assert rc == 2 and "jsonl or csv" in err


def test_files_are_read_through_file_urls_too(ring, client):
    """``file://`` URLs (fsspec's local file system) read as the paths do."""
    urls = [Path(f).as_uri() for f in _files(ring)]
    rc, out, err = cli_here("summary", *urls, "--json", "--scheduler", client.scheduler.address)
    assert rc == 0, err
    _, ref, _ = cli_here("summary", str(ring.merged), "--json")
    assert _without_source(out) == _without_source(ref)


def test_frames_are_numbered_in_mergecaps_order(tmp_path):
    """Files whose times interleave, tie, and step back: each frame's place in the archive is
    its place in what ``mergecap`` writes (the later file first on a tie; a frame whose
    clock stepped back right after the one before it in its file)."""
    times = {"a": [1.0, 2.0, 2.0, 5.0, 3.0, 6.0], "b": [2.0, 2.5, 4.0, 6.0], "c": [0.5, 2.0, 7.0], "d": [8.0, 9.0]}
    paths, mark = [], 0
    for name, ts in times.items():
        frames = []
        for t in ts:
            mark += 1  # each frame's raw sequence number says which it is
            frames.append((t, ether_ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 80, "A", mark, 1, 100, b"")))
        paths.append(tmp_path / f"{name}.pcap")
        paths[-1].write_bytes(pcap_bytes(frames))
    merged = tmp_path / "merged.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(merged), *map(str, paths)], check=True)
    out = subprocess.run(["tshark", "-r", str(merged), "-T", "fields", "-e", "tcp.seq_raw"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    want = {int(m): k for k, m in enumerate(out.split(), 1)}
    parts = [split_file(str(p), i, 2) for i, p in enumerate(paths)]
    spans = [span_of(p) for p in parts]
    got, mark = {}, 0
    for p, (before, near) in zip(parts, plan(spans), strict=True):
        for n in merged_numbers(p, before, [times_of(parts[g]) for g in near]).tolist():
            mark += 1
            got[mark] = n
    assert got == want
    assert plan(spans)[3] == (sum(len(v) for v in list(times.values())[:3]), [])  # d: after all, searched in none


def test_a_url_other_than_a_files_is_fetched_once(ring):
    """A URL fsspec knows but not on this file system (its in-memory one here) is copied to
    the temporary directory, cut as the file is, and the copy removed."""
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/archive/ring0.pcap", ring.files[0].read_bytes())
    before = set(os.listdir(tempfile.gettempdir()))
    by_url = split_file("memory://archive/ring0.pcap", 0, 3)
    by_path = split_file(str(ring.files[0]), 0, 3)
    assert by_url.frames == by_path.frames > 0 and by_url.bytes_read == ring.files[0].stat().st_size
    for a, b in zip(by_url.pieces, by_path.pieces, strict=True):
        assert a.buf.tobytes() == b.buf.tobytes() and a.frames.tobytes() == b.frames.tobytes()
    assert set(os.listdir(tempfile.gettempdir())) == before


@pytest.mark.parametrize("command", [("export", "--format", "jsonl"), ("diagnose", "--json")])
def test_one_connection_by_its_id_in_the_archive(ring, client, command):
    """``--conn N`` names the archive's connection N (ids by first packet over every file)."""
    rc, out, err = cli_here(command[0], *_files(ring), *command[1:], "--conn", "3",
                            "--scheduler", client.scheduler.address)
    assert rc == 0, err
    _, ref, _ = cli_here(command[0], str(ring.merged), *command[1:], "--conn", "3")
    assert out.replace(", ".join(_files(ring)), str(ring.merged)) == ref
    if command[0] == "export":
        assert ref and all(json.loads(line)["conn"] == 3 for line in ref.splitlines())
    else:
        assert [c["id"] for c in json.loads(ref)["connections"]] == [3]


def test_a_file_cut_short_is_reported_after_the_answer(ring, client, tmp_path):
    """Damage part-way, as in one read: every packet before it counts, the answer is printed,
    then the one-line error, exit status 2."""
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(ring.files[-1].read_bytes()[:-7])
    rc, out, err = cli_here("summary", *_files(ring)[:-1], str(cut), "--json", "--scheduler",
                            client.scheduler.address)
    assert rc == 2 and json.loads(out)["packets"] == ring.packets - 1
    lines = [x for x in err.splitlines() if x.startswith("tcpview: error:")]
    assert len(lines) == 1 and "cut.pcap" in lines[0], err


@pytest.mark.parametrize("shared", [False, True])
def test_a_bucket_is_read_from_read_only_bytes_kept_in_memory_or_in_shared_files(ring, tmp_path, shared):
    """The bucket's frames go to the loop as every reader's do (read-only bytes): a writable
    buffer is another type to numba, and each worker compiled the loop again for it (12 s of
    CPU) on an install's first cluster run. Kept in shared files, a piece reads back equal."""
    from tcpview.cluster.bucket import merge_pieces
    from tcpview.cluster.partition import SharedPiece, as_batch

    folder = tmp_path / "shared"
    folder.mkdir()
    in_memory = [split_file(str(p), i, 2) for i, p in enumerate(ring.files)]
    parts = [split_file(str(p), i, 2, str(folder) if shared else None) for i, p in enumerate(ring.files)]
    for mine, plain in zip(parts, in_memory, strict=True):
        for a, b in zip(mine.pieces, plain.pieces, strict=True):
            assert isinstance(a, SharedPiece) == shared
            got = as_batch(a)
            assert bytes(got.buf) == bytes(b.buf) and got.frames.tobytes() == b.frames.tobytes()
    batch = merge_pieces([p.pieces[0] for p in parts])
    assert len(batch) and not batch.buf.flags.writeable

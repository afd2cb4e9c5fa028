"""The 5 MB/s-cap scenario's plumbing, checked without timing anything.

The token bucket's arithmetic on a fake clock, the proxy carrying bytes intact both ways over real
loopback sockets (with a rate so high it never waits), the progress line our observed CLI writes
read back by the scenario, and the reading of a progress log against the targets. The figures
themselves are measured by ``python -m benchmarks.capbench``, never asserted here.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from benchmarks.capproxy import CapProxy, TokenBucket
from benchmarks.capread import Point, parse_points, read_cap, table
from benchmarks.clients.ours_observed import progress_line
from desktop_uploader.engine.events import Progress

MB = 1_000_000


def test_the_bucket_lets_a_burst_through_then_spaces_bytes_at_its_rate() -> None:
    bucket = TokenBucket(rate=5 * MB, burst=250_000)
    assert bucket.take(250_000, now=100.0) == 0.0  # the saved-up burst
    assert bucket.take(500_000, now=100.0) == 0.1  # 0.5 MB more at 5 MB/s
    # The next taker queues behind the first: its wait counts from the end of the first one's.
    assert abs(bucket.take(500_000, now=100.0) - 0.2) < 1e-9


def test_the_bucket_holds_the_rate_over_a_long_run_whatever_the_block_sizes() -> None:
    bucket = TokenBucket(rate=5 * MB, burst=250_000)
    now, sent = 0.0, 0
    for index in range(10_000):
        block = 1_000 + (index * 7919) % 16_000
        now += bucket.take(block, now)  # the proxy sleeps this long before passing the block on
        sent += block
    assert abs(sent / now - 5 * MB) / (5 * MB) < 0.01


def test_the_bucket_saves_no_more_than_its_burst_while_idle() -> None:
    bucket = TokenBucket(rate=5 * MB, burst=250_000)
    bucket.take(250_000, now=0.0)
    assert bucket.take(250_000, now=3600.0) == 0.0
    assert bucket.take(250_000, now=3600.0) == 0.05


def test_the_proxy_carries_every_byte_both_ways(tmp_path: object) -> None:
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen(1)
    received = hashlib.sha256()

    def server() -> None:
        connection, _ = upstream.accept()
        with connection:
            while data := connection.recv(65536):
                received.update(data)
            connection.sendall(b"stored")

    thread = threading.Thread(target=server, daemon=True)
    thread.start()
    proxy = CapProxy(upstream.getsockname(), rate=1e15, queue=256 * 1024, clock=lambda: 0.0)
    threading.Thread(target=proxy.serve, daemon=True).start()
    body = os.urandom(3 * 1024 * 1024 + 17)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as client:
        client.sendall(body)
        client.shutdown(socket.SHUT_WR)
        answer = b""
        while data := client.recv(1024):
            answer += data
    thread.join(30)
    proxy.listener.close()
    upstream.close()
    assert received.hexdigest() == hashlib.sha256(body).hexdigest()
    assert answer == b"stored"
    assert proxy.counters.up_bytes == len(body)
    assert proxy.counters.connections == 1


def test_the_observed_cli_writes_lines_the_scenario_reads_back() -> None:
    event = Progress(
        job_id="j1",
        method="presigned",
        confirmed=8 << 20,
        in_flight=3 << 20,
        total=300 << 20,
        speed=5e6,
        eta=60.0,
        parts_done=1,
        parts_total=38,
        parts_in_flight=2,
        sent=11 << 20,
    )
    points = parse_points("not json\n" + progress_line(event, 1.0) + "\n")
    assert len(points) == 1
    assert (points[0].sent, points[0].confirmed, points[0].parts_in_flight) == (11 << 20, 8 << 20, 2)


def test_a_progress_log_reads_as_first_stored_time_and_the_worst_loss_in_seconds_of_the_cap() -> None:
    points = [
        Point(0.5, 0, 0, 0),
        Point(1.0, 4 * MB, 0, 2),
        Point(3.0, 15 * MB, 0, 3),  # 15 MB on the wire, nothing stored: 3 s of a 5 MB/s cap at risk
        Point(4.0, 20 * MB, 8 * MB, 2),
        Point(21.0, 100 * MB, 100 * MB, 0),
    ]
    reading = read_cap(points, cap=5 * MB)
    assert reading.first_sent_s == 1.0
    assert reading.first_stored_s == 4.0
    assert reading.max_at_risk_bytes == 15 * MB and reading.max_at_risk_s == 3.0 and reading.max_at_risk_at == 3.0
    assert reading.max_parts_in_flight == 3
    assert abs(reading.median_at_risk_s - 2.4) < 1e-9  # the middle of 0.8, 3.0 and 2.4 s (bytes on the wire)
    assert reading.stored_rate == 5 * MB  # 100 MB between the first byte sent (1 s) and the last stored (21 s)


def test_an_empty_log_reads_as_nothing_stored_rather_than_failing() -> None:
    reading = read_cap([], cap=5 * MB)
    assert reading.first_stored_s is None and reading.max_at_risk_s == 0.0 and reading.samples == 0


def test_the_table_shows_each_run_and_the_pause() -> None:
    samples = [
        {
            "scenario": "cap-5MBps",
            "contender": "ours-default",
            "round": 1,
            "wall": 66.0,
            "mbps": 4.77,
            "extra": {
                "of_cap": 0.954,
                "first_stored_s": 3.2,
                "max_at_risk_s": 4.0,
                "max_at_risk_bytes": 20 * 1024 * 1024,
                "max_parts_in_flight": 3,
                "crossed_cap": 301 * 1024 * 1024,
            },
        },
        {
            "scenario": "cap-5MBps",
            "contender": "s5cmd",
            "round": 1,
            "wall": 64.0,
            "mbps": 4.9,
            "extra": {"of_cap": 0.98},
        },
        {
            "scenario": "cap-5MBps-pause",
            "contender": "ours-default",
            "round": 1,
            "extra": {
                "pause_at_s": 30.0,
                "sent_at_sigint": 150 * 1024 * 1024,
                "stored_at_sigint": 130 * 1024 * 1024,
                "kept_by_storage": 144 * 1024 * 1024,
                "lost_s_of_cap": 1.3,
                "pause_took_s": 2.0,
            },
        },
    ]
    text = table(samples)
    assert "| 1 | ours-default | 66.0 | 4.77 | 95.4 % | 3.2 | 4.0 (20 MiB) | 3 | 301 |" in text
    assert "| 1 | s5cmd | 64.0 | 4.90 | 98.0 % | – | – | – | – |" in text
    assert "| 1 | 30.0 | 150.0 | 130.0 | 144.0 | 1.3 | 2.0 | – |" in text


def test_the_proxy_process_reports_what_crossed_it_and_stops_at_end_of_input() -> None:
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen(1)

    def server() -> None:
        connection, _ = upstream.accept()
        with connection:
            while connection.recv(65536):
                pass

    threading.Thread(target=server, daemon=True).start()
    host, port = upstream.getsockname()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.capproxy", "--upstream", f"{host}:{port}", "--rate", "1e12"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proxy.stdin is not None and proxy.stdout is not None
        listening = json.loads(proxy.stdout.readline())["port"]
        with socket.create_connection(("127.0.0.1", listening), timeout=30) as client:
            client.sendall(b"x" * 100_000)
        proxy.stdin.write("stats\n")
        proxy.stdin.flush()
        seen = json.loads(proxy.stdout.readline())["up_bytes"]
        asks = 0
        while seen < 100_000 and asks < 100_000:  # the proxy may still be passing the tail on: ask again
            asks += 1
            proxy.stdin.write("stats\n")
            proxy.stdin.flush()
            seen = json.loads(proxy.stdout.readline())["up_bytes"]
        assert seen == 100_000
        proxy.stdin.close()
        assert proxy.wait(30) == 0
        assert json.loads(proxy.stdout.read().splitlines()[-1])["up_bytes"] == 100_000
    finally:
        if proxy.poll() is None:
            proxy.kill()
        upstream.close()

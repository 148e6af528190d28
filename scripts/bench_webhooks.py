#!/usr/bin/env python3
"""Does a notification subscription slow a run down? Sync runs of `hello` over HTTP
(c=1, keep-alive), with and without a subscription whose receiver (a separate process
on 127.0.0.1) takes every delivery; blocks alternate so drift hits both alike.

    cargo build --release -p floom-host
    python3 scripts/bench_webhooks.py [--runs 200] [--rounds 30]

Prints the p50 and p99 of each, their ratio (over all runs, and the median of the rounds'
own ratios: each round is one block of each kind back to back, so a machine whose speed
drifts, as a shared VM's does, hits both alike), and how many deliveries arrived.

The client and the receiver stand for other machines: with `--pin` (the default on two
cores or more) the server gets CPU 0 to itself and the client and the receiver share the
others, so the figure is what the server's own work costs a run, not what a Python load
generator and a Python receiver competing for the same two cores cost it. The receiver
also runs at nice 19 (`--receiver-nice`). The server's side of every delivery (the outbox
row, the claim, the signed POST, the attempt's record) runs on the server's CPU, beside
the requests.
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "bench-admin-secret"

RECEIVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
count = 0
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global count
        self.rfile.read(int(self.headers.get("content-length", "0")))
        count += 1
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()
    def do_GET(self):
        body = str(count).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def thread_cpu(pid):
    """CPU seconds used so far by each thread name of process `pid`."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return used


def percentile(sorted_values, p):
    rank = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values))) - 1))
    return sorted_values[rank]


def request(conn, method, path, body=None):
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200, help="runs per block")
    parser.add_argument("--rounds", type=int, default=30, help="blocks of each kind")
    parser.add_argument("--receiver-nice", type=int, default=19,
                        help="the receiver's nice value (it stands for another machine)")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction,
                        default=len(os.sched_getaffinity(0)) >= 2,
                        help="the server on CPU 0, the client and the receiver on the others")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, others = ({cpus[0]}, set(cpus[1:])) if args.pin else (set(cpus), set(cpus))

    def receiver_setup():
        os.sched_setaffinity(0, others)
        os.nice(args.receiver_nice)

    binary = os.path.join(ROOT, "target", "release", "floom")
    if not os.path.exists(binary):
        sys.exit("build first: cargo build --release -p floom-host")
    data = tempfile.mkdtemp(prefix="floom-bench-webhooks-")
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True,
                                preexec_fn=receiver_setup)
    port = int(receiver.stdout.readline())
    server = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
         "--examples=rust", "--allow-private-network"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "FLOOM_SECRET": TOKEN, "RUST_LOG": "error"},
        preexec_fn=lambda: os.sched_setaffinity(0, server_cpus),
    )
    os.sched_setaffinity(0, others)
    try:
        while True:
            line = server.stdout.readline()
            if not line:
                sys.exit("the server did not start")
            if line.startswith("floom listening on http://"):
                address = line.split("http://", 1)[1].strip()
                break
        host, server_port = address.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(server_port))
        run = lambda: request(conn, "POST", "/api/apps/hello/run?wait=true", {"inputs": {"name": "Ada"}})
        for _ in range(500):
            assert run()[0] == 200
        samples = {"without": [], "with": []}
        cpu = {"without": {}, "with": {}}
        round_ratios = []
        for i in range(args.rounds):
            block = {}
            # Alternate which kind goes first, so neither always follows the other's tail.
            for kind in (("without", "with") if i % 2 == 0 else ("with", "without")):
                subscription = None
                if kind == "with":
                    status, body = request(conn, "POST", "/api/apps/hello/webhooks",
                                           {"url": f"http://127.0.0.1:{port}/hook"})
                    assert status == 201, body
                    subscription = json.loads(body)["id"]
                times = []
                before = thread_cpu(server.pid)
                for _ in range(args.runs):
                    started = time.perf_counter()
                    status, _ = run()
                    times.append(time.perf_counter() - started)
                    assert status == 200
                samples[kind].extend(times)
                block[kind] = percentile(sorted(times), 50)
                if subscription:
                    # Let the deliveries of this block go out before it is removed.
                    time.sleep(1.0)
                after = thread_cpu(server.pid)
                for name, used in after.items():
                    cpu[kind][name] = cpu[kind].get(name, 0.0) + used - before.get(name, 0.0)
                if subscription:
                    status, _ = request(conn, "DELETE", f"/api/apps/hello/webhooks/{subscription}")
                    assert status == 204
            round_ratios.append(block["with"] / block["without"])
        receiver_conn = http.client.HTTPConnection("127.0.0.1", port)
        receiver_conn.request("GET", "/")
        delivered = int(receiver_conn.getresponse().read())
        print(f"{args.rounds} alternating blocks of {args.runs} sync runs of hello, c=1, release build, "
              f"receiver at nice {args.receiver_nice}, "
              + (f"server on CPU {sorted(server_cpus)}, client and receiver on {sorted(others)}"
                 if args.pin else "nothing pinned"))
        print(f"| | runs | p50 ms | p99 ms |")
        print(f"|---|---:|---:|---:|")
        figures = {}
        for kind in ("without", "with"):
            values = sorted(samples[kind])
            figures[kind] = (percentile(values, 50) * 1000, percentile(values, 99) * 1000)
            print(f"| {kind} a subscription | {len(values)} | {figures[kind][0]:.3f} | {figures[kind][1]:.3f} |")
        ratio = figures["with"][0] / figures["without"][0]
        names = sorted(set(cpu["with"]) | set(cpu["without"]))
        print("server CPU per run, µs, by thread:",
              ", ".join(f"{n} {cpu['without'].get(n, 0) / len(samples['without']) * 1e6:.0f} → "
                        f"{cpu['with'].get(n, 0) / len(samples['with']) * 1e6:.0f}"
                        for n in names if cpu["with"].get(n, 0) + cpu["without"].get(n, 0) > 0))
        print(f"p50 with / without: {ratio:.3f} over all runs; "
              f"median of the {len(round_ratios)} rounds' ratios: {percentile(sorted(round_ratios), 50):.3f}")
        print(f"deliveries received: {delivered} of {args.rounds * args.runs}")
    finally:
        server.terminate()
        server.wait()
        receiver.terminate()
        receiver.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()

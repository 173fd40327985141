#!/usr/bin/env python3
"""Zapini ID side by side with a certified peer (npm oidc-provider 9).

Started by tests/bench/run, which installs what this needs and builds the
binary. Runs every figure on both systems in turn (the order alternates
each round, so drift in the machine's load hits both alike), keeps the
median of the rounds, prints a table and writes JSON. See
docs/benchmarks.md for what each figure means.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
WRK_DIR = os.path.join(HERE, "wrk")
SECRET = "bench-client-secret-0123456789abcdefghijklmnop"
PASSWORD = "correct horse battery staple"
TOTP_SEED_HEX = "3132333435363738393031323334353637383930"
REDIRECT_URI = "http://127.0.0.1:9/callback"
# The TOTP users: the first two blocks serve the scale check (1k, then 1M
# users), the rest the sign-in figure.
SCALE_BLOCK = 200


def log(message):
    print(message, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic(client_id):
    raw = f"{client_id}:{SECRET}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def http_call(port, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def proc_status(pid):
    """VmRSS and VmHWM of a process, and VmRSS split into RssAnon (its own
    memory) and RssFile (pages of its executable and libraries, clean and
    shared with the page cache), in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def reset_peak(pid):
    """Resets VmHWM to the current RSS (proc(5), clear_refs value 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def totp_code(at):
    """RFC 6238 code of the bench seed for the time step of `at`."""
    counter = struct.pack(">Q", int(at) // 30)
    digest = hmac.new(bytes.fromhex(TOTP_SEED_HEX), counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": os.uname().release}


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ---------------------------------------------------------------- wrk


def wrk(port, path, script, seconds, threads, connections, env=None):
    """Runs wrk and returns the JSON line its script printed."""
    run_env = dict(os.environ, BENCH_WRK_DIR=WRK_DIR, BENCH_THREADS=str(threads))
    run_env.update(env or {})
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", os.path.join(WRK_DIR, script), f"http://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(cmd, env=run_env, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH "):
            result = json.loads(line[6:])
            result["per_second"] = result["ok"] / result["seconds"] if result["seconds"] else 0
            if out.stderr.strip():
                result["stderr"] = out.stderr.strip()[:500]
            return result
    raise RuntimeError(f"wrk printed no result: {out.stdout}\n{out.stderr}")


# ---------------------------------------------------------------- systems


class System:
    """A server under test: its process, port and how to mint codes."""

    name = ""
    pid = None
    port = None

    def measure(self, run):
        reset_peak(self.pid)
        result = run()
        mem = proc_status(self.pid)
        result["rss_mib"] = round(mem["VmRSS"], 1)
        result["peak_rss_mib"] = round(mem["VmHWM"], 1)
        return result

    def exchange_codes(self, codes, client):
        tokens = []
        for code in codes:
            body = urllib.parse.urlencode({
                "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            })
            status, raw = http_call(self.port, "POST", "/token", body, {
                "Content-Type": "application/x-www-form-urlencoded", "Authorization": basic(client),
            })
            if status != 200:
                raise RuntimeError(f"{self.name}: code exchange answered {status}: {raw[:200]}")
            tokens.append(json.loads(raw)["refresh_token"])
        return tokens


class Zapini(System):
    name = "zapini"

    def __init__(self, binary, workdir, scaled):
        self.binary = binary
        self.dir = workdir
        self.scaled = scaled
        self.port = free_port()
        self.config = os.path.join(workdir, "zapini-id.toml")
        self.env = dict(os.environ, ZAPINI_ID_CONFIG=self.config, BENCH_CLIENT_SECRET=SECRET)
        self.env.setdefault("RUST_LOG", "info,sqlx=warn,sea_orm=warn")
        if scaled:
            self.env["ZAPINI_ID_SECRET"] = "bench-master-secret-0123456789abcdefghijklmnop"
        self.proc = None
        self.write_config()

    def write_config(self):
        clients = os.path.join(self.dir, "clients")
        os.makedirs(clients, exist_ok=True)
        if self.scaled:
            database = os.environ["ZAPINI_TEST_POSTGRES_URL"]
            redis = f'redis_url = "{os.environ["ZAPINI_TEST_REDIS_URL"]}"\n'
        else:
            database = f"sqlite://{self.dir}/zapini-id.db?mode=rwc"
            redis = ""
        with open(self.config, "w") as f:
            f.write(
                f'issuer = "http://localhost:{self.port}"\n'
                f'listen = "127.0.0.1:{self.port}"\n'
                f'database_url = "{database}"\n{redis}'
                f'secret_file = "{self.dir}/secret.key"\n'
                f'clients_dir = "{clients}"\n'
            )
        specs = {
            "bench-es256": ("client_secret_basic", '["client_credentials"]', "ES256", '["profile"]'),
            "bench-rs256": ("client_secret_post", '["client_credentials"]', "RS256", '["profile"]'),
            "bench-app": (
                "client_secret_basic", '["authorization_code", "refresh_token"]', "ES256",
                '["openid", "offline_access"]',
            ),
        }
        for client_id, (method, grants, alg, scopes) in specs.items():
            with open(os.path.join(clients, f"{client_id}.toml"), "w") as f:
                f.write(
                    f'client_id = "{client_id}"\n'
                    f'token_endpoint_auth_method = "{method}"\n'
                    'client_secret_env = "BENCH_CLIENT_SECRET"\n'
                    f"grant_types = {grants}\n"
                    f'redirect_uris = ["{REDIRECT_URI}"]\n'
                    f"scopes = {scopes}\n"
                    f'id_token_signed_response_alg = "{alg}"\n'
                    f'access_token_signed_response_alg = "{alg}"\n'
                    # The operator's own app: no consent page in the sign-in.
                    "first_party = true\n"
                )

    def cli(self, *args, stdin=None):
        out = subprocess.run(
            [self.binary, *args], env=self.env, input=stdin, capture_output=True, text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"zapini-id {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def start(self):
        """Starts the server; returns milliseconds from spawn to /readyz 200."""
        log_path = os.path.join(self.dir, "server.log")
        self.logfile = open(log_path, "a")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "serve"], env=self.env, stdout=self.logfile, stderr=self.logfile,
        )
        self.proc.log_path = log_path
        self.pid = self.proc.pid
        ready = wait_ready(self.port, "/readyz", self.proc, started)
        return ready

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def seed_users(self, count, start, totp_count):
        args = ["bench", "seed-users", "--count", str(count), "--start", str(start),
                "--prefix", "user"]
        if totp_count:
            args += ["--totp-count", str(totp_count), "--totp-seed-hex", TOTP_SEED_HEX]
        return json.loads(self.cli(*args, stdin=PASSWORD + "\n"))

    def mint_codes(self, n, scope):
        out = self.cli(
            "bench", "seed-codes", "--client", "bench-app", "--redirect-uri", REDIRECT_URI,
            "--email", "user0@bench.example", "--scope", scope, "--count", str(n),
        )
        return out.split()

    def hash_rate(self, threads, seconds):
        return json.loads(self.cli("bench", "hash", "--threads", str(threads),
                                   "--seconds", str(seconds)))


class Peer(System):
    name = "peer"

    def __init__(self, workdir):
        self.dir = workdir
        self.port = free_port()
        self.admin = free_port()
        self.proc = None

    def start(self):
        env = dict(
            os.environ, PEER_PORT=str(self.port), PEER_ADMIN_PORT=str(self.admin),
            BENCH_SECRET=SECRET, BENCH_REDIRECT_URI=REDIRECT_URI, NODE_ENV="production",
        )
        log_path = os.path.join(self.dir, "peer.log")
        self.logfile = open(log_path, "a")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            ["node", os.path.join(HERE, "peer.mjs")], env=env, cwd=HERE,
            stdout=self.logfile, stderr=self.logfile,
        )
        self.proc.log_path = log_path
        self.pid = self.proc.pid
        return wait_ready(self.port, "/.well-known/openid-configuration", self.proc, started)

    def stop(self):
        Zapini.stop(self)

    def mint_codes(self, n, scope):
        query = urllib.parse.urlencode({"n": n, "scope": scope, "client": "bench-basic"})
        status, raw = http_call(self.admin, "GET", f"/mint-codes?{query}", timeout=120)
        if status != 200:
            raise RuntimeError(f"peer: minting codes answered {status}")
        return raw.decode().split()


def wait_ready(port, path, proc, started):
    while time.monotonic() - started < 60:
        if proc.poll() is not None:
            with open(proc.log_path) as f:
                tail = f.read()[-2000:]
            raise RuntimeError(f"the server exited with {proc.returncode} before it was ready:\n"
                               f"{tail}")
        try:
            status, _ = http_call(port, "GET", path, timeout=1)
            if status == 200:
                return round((time.monotonic() - started) * 1000, 1)
        except OSError:
            pass
        time.sleep(0.002)
    raise RuntimeError("the server was not ready within 60 s")


# ---------------------------------------------------------------- bounds


def openssl_speed(seconds):
    """Signatures per second of RSA-2048, ECDSA P-256 and Ed25519 on one
    and on two processes (`openssl speed -multi 2`), divided by wall-clock
    time (`-elapsed`) like the servers' figures, not by CPU time."""
    result = {}
    for procs in (1, 2):
        cmd = ["openssl", "speed", "-elapsed", "-seconds", str(seconds)]
        if procs > 1:
            cmd += ["-multi", str(procs)]
        out = subprocess.run(cmd + ["rsa2048", "ecdsap256", "ed25519"],
                             capture_output=True, text=True, check=False).stdout
        figures = {}
        for name, pattern in (
            ("rsa2048", r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)"),
            ("ecdsap256", r"^\s*256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)"),
            ("ed25519", r"^\s*253 bits EdDSA \(Ed25519\)\s+\S+\s+\S+\s+([\d.]+)"),
        ):
            found = re.search(pattern, out, re.MULTILINE)
            figures[name] = float(found.group(1)) if found else None
        result[f"{procs}_thread"] = figures
    return result


# ---------------------------------------------------------------- figures


class Bench:
    def __init__(self, args, zapini, peer):
        self.args = args
        self.zapini = zapini
        self.peer = peer
        self.seconds = 1 if args.quick else args.seconds
        self.rounds = 1 if args.quick else args.rounds
        self.threads = 2
        self.connections = 16
        self.runs = {}
        self.next_signin_user = 2 * SCALE_BLOCK
        # Codes for a whole run at 4,000 exchanges a second, more than
        # either system reached here; a run that still uses them up is
        # marked a lower bound, and the next round gets twice as many.
        start_pool = max(2000, 4000 * self.seconds)
        self.code_pool = {"zapini": start_pool, "peer": start_pool}

    def systems(self, round_no):
        both = [self.zapini] + ([self.peer] if self.peer else [])
        return both if round_no % 2 == 0 else list(reversed(both))

    def record(self, figure, system, result):
        self.runs.setdefault(figure, {}).setdefault(system.name, []).append(result)
        log(f"  {figure:<22} {system.name:<7} {result['per_second']:>9.0f}/s "
            f"p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms "
            f"peak {result.get('peak_rss_mib', 0)} MiB"
            + (f" failed {result['failed']}" if result["failed"] else ""))

    def load(self, system, path, script, env=None, threads=None, connections=None):
        return system.measure(lambda: wrk(
            system.port, path, script, self.seconds, threads or self.threads,
            connections or self.connections, env))

    def get(self, figure, path):
        def run(system, _round):
            return self.load(system, path, "get.lua")
        return figure, run

    def client_credentials(self, alg):
        def run(system, _round):
            if system.name == "zapini":
                client = f"bench-{alg.lower()}"
                env = {"BENCH_BODY": "grant_type=client_credentials"}
            else:
                client = "bench-basic" if alg == "ES256" else "bench-post"
                env = {"BENCH_BODY": "grant_type=client_credentials"
                       f"&resource=urn%3Abench%3A{alg.lower()}"}
            if alg == "ES256":
                env["BENCH_AUTH"] = basic(client)
            else:
                env["BENCH_AUTH"] = ""
                env["BENCH_BODY"] += f"&client_id={client}&client_secret={SECRET}"
            return self.load(system, "/token", "client_credentials.lua", env)
        return f"client_credentials_{alg.lower()}", run

    def app_client(self, system):
        return "bench-app" if system.name == "zapini" else "bench-basic"

    def refresh(self):
        def run(system, _round):
            # One chain per connection, and spares: now and then a chain
            # ends without a failed answer (wrk sends a request whose
            # answer never reaches the script, seen with both servers), and
            # a spare token takes its place.
            codes = system.mint_codes(4 * self.connections, "openid offline_access")
            tokens = system.exchange_codes(codes, self.app_client(system))
            pool = os.path.join(self.args.workdir, f"refresh-{system.name}.txt")
            with open(pool, "w") as f:
                f.write("\n".join(tokens) + "\n")
            env = {"BENCH_POOL": pool, "BENCH_AUTH": basic(self.app_client(system))}
            return self.load(system, "/token", "refresh.lua", env)
        return "refresh_rotation", run

    def code(self):
        def run(system, _round):
            n = self.code_pool[system.name]
            started = time.monotonic()
            codes = system.mint_codes(n, "openid")
            minted_in = time.monotonic() - started
            pool = os.path.join(self.args.workdir, f"codes-{system.name}.txt")
            with open(pool, "w") as f:
                f.write("\n".join(codes) + "\n")
            env = {"BENCH_POOL": pool, "BENCH_AUTH": basic(self.app_client(system)),
                   "BENCH_REDIRECT_URI": REDIRECT_URI}
            result = self.load(system, "/token", "code.lua", env)
            result["pool"] = n
            result["pool_minted_seconds"] = round(minted_in, 2)
            if result["exhausted"]:
                result["lower_bound"] = True
            # Enough codes for the next round at twice this rate.
            self.code_pool[system.name] = max(n, int(result["per_second"] * self.seconds * 2))
            return result
        return "authorization_code", run

    def signin(self, system, first_user, threads, seconds=None):
        env = {
            "BENCH_USER_FIRST": str(first_user), "BENCH_USER_PREFIX": "user",
            "BENCH_PASSWORD": PASSWORD, "BENCH_TOTP": totp_code(time.time() + 30),
            "BENCH_CLIENT": "bench-app", "BENCH_REDIRECT_URI": REDIRECT_URI,
            "BENCH_AUTH": basic("bench-app"),
        }
        return system.measure(lambda: wrk(
            system.port, "/", "signin.lua", seconds or self.seconds, threads, threads, env))

    def signins(self):
        def run(system, _round):
            if system.name != "zapini":
                return None
            first = self.next_signin_user
            result = self.signin(system, first, 8)
            self.next_signin_user += int(result["ok"] + result["failed"] + 8) + 8
            return result
        return "full_signin", run

    def figures(self):
        every = [
            self.get("discovery", "/.well-known/openid-configuration"),
            self.get("jwks", "/jwks"),
            self.client_credentials("ES256"),
            self.client_credentials("RS256"),
            self.refresh(),
            self.code(),
            self.signins(),
        ]
        only = self.args.only.split(",") if self.args.only else None
        return [f for f in every if only is None or f[0] in only]

    def run_all(self):
        for round_no in range(self.rounds):
            log(f"round {round_no + 1} of {self.rounds}")
            for figure, run in self.figures():
                for system in self.systems(round_no):
                    result = run(system, round_no)
                    if result is not None:
                        self.record(figure, system, result)



# ---------------------------------------------------------------- scale


def scale_point(bench, users):
    """Sign-in and refresh latency on one connection with `users` users."""
    z = bench.zapini
    block = 0 if users < 10_000 else SCALE_BLOCK
    seconds = 1 if bench.args.quick else 5
    signin = bench.signin(z, block, 1, seconds)
    codes = z.mint_codes(1, "openid offline_access")
    tokens = z.exchange_codes(codes, "bench-app")
    pool = os.path.join(bench.args.workdir, "refresh-scale.txt")
    with open(pool, "w") as f:
        f.write("\n".join(tokens) + "\n")
    refresh = z.measure(lambda: wrk(z.port, "/token", "refresh.lua", seconds, 1, 1, {
        "BENCH_POOL": pool, "BENCH_AUTH": basic("bench-app")}))
    point = {
        "users": users,
        "signin_ms": round(1000 / signin["per_second"], 2) if signin["per_second"] else None,
        "signin_ok": signin["ok"],
        "refresh_p50_ms": refresh["p50_ms"],
        "refresh_p99_ms": refresh["p99_ms"],
        "refresh_mean_ms": refresh["mean_ms"],
    }
    log(f"  scale {users:>9} users: sign-in {point['signin_ms']} ms, "
        f"refresh p50 {point['refresh_p50_ms']:.2f} ms p99 {point['refresh_p99_ms']:.2f} ms")
    return point


# ---------------------------------------------------------------- report


def median_of(results, key):
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(runs):
    figures = {}
    for figure, by_system in runs.items():
        entry = {}
        for name, results in by_system.items():
            entry[name] = {
                "per_second": round(median_of(results, "per_second"), 1),
                "p50_ms": round(median_of(results, "p50_ms"), 3),
                "p99_ms": round(median_of(results, "p99_ms"), 3),
                "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
                "failed": sum(r["failed"] for r in results),
                "lower_bound": any(r.get("lower_bound") for r in results),
                "rounds": [round(r["per_second"], 1) for r in results],
            }
        z, p = entry.get("zapini"), entry.get("peer")
        if z and p and p["per_second"]:
            entry["ratio"] = round(z["per_second"] / p["per_second"], 2)
        figures[figure] = entry
    return figures


def fmt(value, digits=0):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def table(results):
    lines = [
        "| figure | Zapini ID | peer | ratio |",
        "|---|---:|---:|---:|",
    ]
    for figure, entry in results["figures"].items():
        z, p = entry.get("zapini", {}), entry.get("peer", {})
        mark = " (lower bound)" if z.get("lower_bound") else ""
        lines.append(
            f"| {figure} /s | {fmt(z.get('per_second'))}{mark} | {fmt(p.get('per_second'))} "
            f"| {fmt(entry.get('ratio'), 2)} |")
        lines.append(
            f"| {figure} p50 / p99 ms | {fmt(z.get('p50_ms'), 2)} / {fmt(z.get('p99_ms'), 2)} "
            f"| {fmt(p.get('p50_ms'), 2)} / {fmt(p.get('p99_ms'), 2)} | |")
        lines.append(
            f"| {figure} peak RSS MiB | {fmt(z.get('peak_rss_mib'), 1)} "
            f"| {fmt(p.get('peak_rss_mib'), 1)} | |")
    mem = results["memory"]
    lines.append(f"| idle RSS MiB | {fmt(mem['zapini_idle_mib'], 1)} "
                 f"| {fmt(mem.get('peer_idle_mib'), 1)} | |")
    lines.append(f"| idle RSS MiB: own memory (RssAnon) / mapped files (RssFile) | "
                 f"{fmt(mem.get('zapini_idle_anon_mib'), 1)} / "
                 f"{fmt(mem.get('zapini_idle_file_mib'), 1)} | "
                 f"{fmt(mem.get('peer_idle_anon_mib'), 1)} / "
                 f"{fmt(mem.get('peer_idle_file_mib'), 1)} | |")
    start = results["startup_ms"]
    lines.append(f"| start-up to ready ms (first start / restart) | "
                 f"{fmt(start['zapini_first'], 0)} / {fmt(start['zapini_restart'], 0)} "
                 f"| {fmt(start.get('peer'), 0)} | |")
    bounds = results["bounds"]
    for threads in ("1_thread", "2_thread"):
        argon = bounds["argon2id"][threads]["per_second"]
        sig = bounds["openssl_sign"][threads]
        lines.append(
            f"| bound, {threads.replace('_', ' ')}: Argon2id hashes/s; RSA-2048 / P-256 / "
            f"Ed25519 signs/s | {fmt(argon, 1)}; {fmt(sig['rsa2048'])} / "
            f"{fmt(sig['ecdsap256'])} / {fmt(sig['ed25519'])} | | |")
    for point in results["scale"]:
        lines.append(
            f"| {point['users']:,} users: sign-in ms (one connection); refresh p50 / p99 ms "
            f"| {fmt(point['signin_ms'], 1)}; {fmt(point['refresh_p50_ms'], 2)} / "
            f"{fmt(point['refresh_p99_ms'], 2)} | | |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def startup(system, times):
    measured = []
    for _ in range(times):
        measured.append(system.start())
        time.sleep(0.5)
        system.stop()
    return statistics.median(measured)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scaled", action="store_true")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--out", default="target/bench/results.json")
    parser.add_argument("--command", default="")
    parser.add_argument("--only", default="", help="comma-separated figures; no scale check")
    args = parser.parse_args()
    if args.quick:
        args.users = min(args.users, 10_000)

    args.workdir = tempfile.mkdtemp(prefix="zapini-bench-")
    zapini = Zapini(args.binary, args.workdir, args.scaled)
    peer = None if args.no_peer else Peer(args.workdir)
    results = {
        "command": args.command, "quick": args.quick, "scaled": args.scaled,
        "machine": machine(), "loadavg_before": loadavg(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wrk": {"threads": 2, "connections": 16, "seconds": 1 if args.quick else args.seconds,
                "rounds": 1 if args.quick else args.rounds},
    }
    try:
        run(args, zapini, peer, results)
    finally:
        zapini.stop()
        if peer:
            peer.stop()
        shutil.rmtree(args.workdir, ignore_errors=True)
    results["loadavg_after"] = loadavg()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(table(results))
    print(f"\nload average before {results['loadavg_before']}, after {results['loadavg_after']}; "
          f"JSON in {args.out}")
    broken = [
        f"{figure} ({name})" for figure, entry in results["figures"].items()
        for name, value in entry.items()
        if isinstance(value, dict) and (value["per_second"] == 0 or value["failed"])
    ]
    if broken:
        print(f"failed requests or no successful ones: {', '.join(broken)}")
        sys.exit(1)


def run(args, zapini, peer, results):
    seconds = 1 if args.quick else 3
    log("bounds: openssl speed, Argon2id")
    results["bounds"] = {
        "openssl_sign": openssl_speed(seconds),
        "argon2id": {f"{t}_thread": zapini.hash_rate(t, seconds) for t in (1, 2)},
    }
    log("start-up")
    first = zapini.start()
    zapini.stop()
    results["startup_ms"] = {"zapini_first": first, "zapini_restart": startup(zapini, 3)}
    if peer:
        results["startup_ms"]["peer"] = startup(peer, 3)

    log("seeding 1,000 users")
    totp_users = 1_000 if args.quick else 5_000
    results["seed"] = [zapini.seed_users(1_000, 0, 1_000)]
    zapini.start()
    if peer:
        peer.start()
    time.sleep(1)
    results["memory"] = {}
    for system in [zapini, peer] if peer else [zapini]:
        status = proc_status(system.pid)
        results["memory"][f"{system.name}_idle_mib"] = round(status["VmRSS"], 1)
        results["memory"][f"{system.name}_idle_anon_mib"] = round(status["RssAnon"], 1)
        results["memory"][f"{system.name}_idle_file_mib"] = round(status["RssFile"], 1)
    bench = Bench(args, zapini, peer)
    results["scale"] = [scale_point(bench, 1_000)]
    zapini.stop()
    results["seed"].append(zapini.seed_users(totp_users - 1_000, 1_000, totp_users - 1_000))
    zapini.start()

    bench.run_all()
    results["figures"] = summarise(bench.runs)
    results["memory"]["zapini_idle_after_mib"] = round(proc_status(zapini.pid)["VmRSS"], 1)

    if args.only:
        return
    zapini.stop()
    log(f"seeding up to {args.users:,} users")
    results["seed"].append(zapini.seed_users(args.users - totp_users, totp_users, 0))
    zapini.start()
    results["scale"].append(scale_point(bench, args.users))


if __name__ == "__main__":
    main()

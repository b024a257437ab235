"""Benchmark: the real `bentoml serve` on 127.0.0.1, bounded load, p50/p99 latency and throughput.

Scenarios: score_ids with 1 and with 100 customers per request, at concurrency
1 and 16, and two with reasons to show what they cost; each runs for a fixed
number of requests (or --seconds, whichever comes first) after a warm-up. Then a
baseline in the same run: the concurrency-16 scenarios on a server that never
recycles connections (``requests_per_connection: 0``), so the effect of
recycling is a ratio measured on the same machine at the same time.

The load generator is a minimal asyncio HTTP/1.1 client with keep-alive
connections (reconnecting on ``Connection: close`` as any client does), so it
takes as little of the 2 cores as possible. "worker CPU %" is each worker's
share of the server's CPU: 50/50 is balanced, 100/0 means one worker did all.
Champions: small ones trained with the real pipeline into
``outputs/bench_serving`` (reused on later runs). Run from the repo root:

    .venv/bin/python -m benchmarks.bench_service --workers 2

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from serving import launch

ROOT = Path(__file__).resolve().parents[1]


def prepare(root: Path) -> tuple[str, Path, list[str]]:
    """Champions + a feature snapshot (trained once, reused); returns (tracking uri, configs dir, known ids)."""
    from tests.serving_champions import AS_OF, champions

    ready = root / "ready.json"
    if ready.exists():
        info = json.loads(ready.read_text())
        return info["uri"], Path(info["configs"]), info["ids"]
    root.mkdir(parents=True, exist_ok=True)
    c = champions(root)
    env = {**os.environ, "MLFLOW_TRACKING_URI": c.uri}
    out = root / "scores.parquet"
    subprocess.run(
        [sys.executable, "-m", "retain", "score", "--as-of", AS_OF, "--data", str(c.data_dir), "--out", str(out)]
        + ["--store", str(c.store), "--no-track", "--configs", str(c.configs)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    import pandas as pd

    ids = pd.read_parquet(out)["customer_id"].tolist()
    (c.configs / "serving.yaml").write_text(f"store: {c.store}\nworkers: 2\n")
    ready.write_text(json.dumps({"uri": c.uri, "configs": str(c.configs), "ids": ids}))
    return c.uri, c.configs, ids


def start(uri: str, configs: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "RETAIN_CONFIGS": str(configs)}
    env.pop("RETAIN_API_KEY", None)
    return launch.start(port, env, workers=workers)


def _request(port: int, body: bytes) -> bytes:
    head = (
        f"POST /score_ids HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(HTTP status, whether the server asked to close the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    close = any(x.lower().replace(" ", "") == "connection:close" for x in lines[1:])
    length = next((int(x.split(":", 1)[1]) for x in lines[1:] if x.lower().startswith("content-length:")), None)
    if length is None:  # chunked
        while True:
            size = int((await reader.readline()).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status, close


async def _load(port: int, bodies: list[bytes], concurrency: int, total: int, seconds: float):
    latencies: list[float] = []
    errors = 0
    sent = 0
    stop_at = time.perf_counter() + seconds

    async def worker(k: int):
        nonlocal errors, sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        while sent < total and time.perf_counter() < stop_at:
            sent += 1
            payload = bodies[i % len(bodies)]
            i += concurrency
            t0 = time.perf_counter()
            writer.write(payload)
            status, close = await _read_response(reader)
            latencies.append(time.perf_counter() - t0)
            errors += status != 200
            if close:  # as any HTTP client does: reconnect (the server spreads connections over its workers)
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return np.array(latencies), errors, time.perf_counter() - started


def server_cpu(proc: subprocess.Popen) -> dict[int, float]:
    """CPU seconds used so far by the server and each of its workers, by pid (robust to other load)."""
    import psutil

    parent = psutil.Process(proc.pid)
    used = {}
    for p in [parent, *parent.children(recursive=True)]:
        try:
            t = p.cpu_times()
            used[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return used


def _split(before: dict[int, float], after: dict[int, float], server: int) -> tuple[float, str]:
    """(CPU seconds of the whole server, each worker's share in %, largest first)."""
    used = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    workers = sorted((v for pid, v in used.items() if pid != server), reverse=True)
    total = sum(workers) or 1.0
    return sum(used.values()), "/".join(f"{100 * v / total:.0f}" for v in workers)


def scenario(
    port: int,
    ids: list[str],
    size: int,
    concurrency: int,
    total: int,
    seconds: float,
    proc: subprocess.Popen,
    reasons: bool = False,
) -> dict:
    rng = np.random.default_rng(size * 100 + concurrency)
    bodies = [_request(port, json.dumps({"customer_ids": list(rng.choice(ids, size))}).encode()) for _ in range(256)]
    asyncio.run(_load(port, bodies, concurrency, min(200, total), 5))  # warm-up
    cpu0 = server_cpu(proc)
    lat, errors, wall = asyncio.run(_load(port, bodies, concurrency, total, seconds))
    cpu, split = _split(cpu0, server_cpu(proc), proc.pid)
    return {
        "customers/request": size,
        "reasons": "yes" if reasons else "no",
        "concurrency": concurrency,
        "requests": len(lat),
        "errors": errors,
        "p50 ms": np.percentile(lat, 50) * 1e3,
        "p99 ms": np.percentile(lat, 99) * 1e3,
        "requests/s": len(lat) / wall,
        "customers/s": len(lat) * size / wall,
        "server CPU ms/request": cpu / len(lat) * 1e3,
        "worker CPU %": split,
    }


PLAN = [(1, 1, False), (1, 16, False), (100, 1, False), (100, 16, False), (1, 1, True), (100, 16, True)]
BASELINE_PLAN = [(1, 16, False), (100, 16, False)]  # without connection recycling, measured in the same run


def run_server(uri: str, configs: Path, ids: list[str], args, recycle: int, plan) -> list[dict]:
    """Start the server with ``requests_per_connection = recycle``, run the scenarios, stop it."""
    settings = configs / "serving.yaml"
    lines = [x for x in settings.read_text().splitlines() if not x.startswith("requests_per_connection:")]
    settings.write_text("\n".join([*lines, f"requests_per_connection: {recycle}"]) + "\n")
    port = launch.free_port()
    proc = start(uri, configs, port, args.workers)
    try:
        launch.wait_ready(f"http://127.0.0.1:{port}", proc, timeout=240)
        rows = [scenario(port, ids, size, conc, args.requests, args.seconds, proc, why) for size, conc, why in plan]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return [{"recycle every": recycle or "never", **r} for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="BentoML worker processes")
    parser.add_argument("--requests", type=int, default=20000, help="requests per scenario (upper bound)")
    parser.add_argument("--seconds", type=float, default=15, help="time per scenario (upper bound)")
    parser.add_argument("--recycle", type=int, default=100, help="requests_per_connection for the main run")
    parser.add_argument("--root", type=Path, default=ROOT / "outputs" / "bench_serving", help="champions + snapshot")
    args = parser.parse_args()
    uri, configs, ids = prepare(args.root)
    rows = run_server(uri, configs, ids, args, args.recycle, PLAN)
    rows += run_server(uri, configs, ids, args, 0, BASELINE_PLAN)
    load = os.getloadavg()
    print(f"\nbentoml serve, {args.workers} workers, {os.cpu_count()} cores, load average {load[0]:.1f} at the end\n")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print(
            "| "
            + " | ".join(
                f"{v:,.1f}" if isinstance(v, float) else (f"{v:,}" if isinstance(v, int) else v) for v in r.values()
            )
            + " |"
        )


if __name__ == "__main__":
    main()

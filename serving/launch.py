"""Start the real BentoML server as a subprocess: one recipe for the CLI, the tests and the benchmark."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from features.config import ROOT


def serve_command(host: str, port: int) -> list[str]:
    """``bentoml serve`` for Retain's service, run from the project root."""
    return [sys.executable, "-m", "bentoml", "serve", "serving.service:Retain", "--host", host, "--port", str(port)]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int, env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    """The server on 127.0.0.1:PORT in the background; its output goes to ``log``, or nowhere."""
    out = subprocess.DEVNULL if log is None else open(log, "ab")  # noqa: SIM115 (the child holds it open)
    try:
        return subprocess.Popen(serve_command("127.0.0.1", port), cwd=ROOT, env=env, stdout=out, stderr=out)
    finally:
        if log is not None:
            out.close()


def wait_ready(base_url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Block until /readyz answers 200; fail early if the server process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"bentoml serve did not become ready within {timeout:.0f} s")

"""Start the real BentoML server as a subprocess: one recipe for the CLI, the tests and the benchmark.

What the starter and the server agree on lives here: ``RETAIN_CONFIGS`` names the settings folder (read when
the service starts, never when it is imported), the worker count goes in BentoML's own config override
(``BENTOML_CONFIG_OPTIONS``, read by ``bentoml serve`` when it starts), and the environment the server
runs in (telemetry off) is set by whoever starts it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from features.config import CONFIG_DIR, ROOT
from features.runtime import TELEMETRY_OFF
from serving.config import ServingConfig

SERVICE = "retain"  # the BentoML service's name: its config override is services.<SERVICE>.*
OPTIONS = "BENTOML_CONFIG_OPTIONS"
# the server's environment; a variable the starter already set wins (BentoML's rule for a service's envs)
SERVER_ENV = {
    **TELEMETRY_OFF,
    "OTEL_SDK_DISABLED": "true",  # no tracing exporter here; spans cost ~0.5 ms a request
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # loading a champion copies local files: no progress bars
}


def current_config() -> ServingConfig:
    """configs/serving.yaml, or serving.yaml in the folder ``RETAIN_CONFIGS`` names; read when the service starts."""
    return ServingConfig.load(Path(os.environ.get("RETAIN_CONFIGS", CONFIG_DIR)))


def server_env(env: dict[str, str], workers: int) -> dict[str, str]:
    """``env`` for ``bentoml serve`` with ``workers`` worker processes (added to any config override it has)."""
    options = " ".join(x for x in (env.get(OPTIONS, ""), f"services.{SERVICE}.workers={workers}") if x)
    return {**SERVER_ENV, **env, **TELEMETRY_OFF, OPTIONS: options}  # telemetry off whatever env says


def serve_command(host: str, port: int) -> list[str]:
    """``bentoml serve`` for Retain's service, run from the project root."""
    return [sys.executable, "-m", "bentoml", "serve", "serving.service:Retain", "--host", host, "--port", str(port)]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int, env: dict[str, str], *, workers: int, log: Path | None = None) -> subprocess.Popen:
    """The server with ``workers`` workers on 127.0.0.1:PORT in the background; its output goes to ``log``, or
    nowhere."""
    out = subprocess.DEVNULL if log is None else open(log, "ab")  # noqa: SIM115 (the child holds it open)
    try:
        command = serve_command("127.0.0.1", port)
        return subprocess.Popen(command, cwd=ROOT, env=server_env(env, workers), stdout=out, stderr=out)
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


def empty_key_reason(env_var: str) -> str:
    """Why an API key variable that is set but empty is refused (it would leave the service open)."""
    return (
        f"{env_var} is set but empty, which would leave the service open: set it to a key, "
        "or unset it to run without authentication"
    )


def run_server(command: list[str], *, cwd: Path, env: dict[str, str]) -> int:
    """Run the server in its own process group until it exits; SIGTERM, SIGINT or SIGHUP to us stop the whole
    group (the BentoML arbiter and its workers), so nothing stays on the port after ``retain serve`` ends."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True)

    def stop(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while True:
            try:
                code = proc.wait(timeout=1)
                break
            except subprocess.TimeoutExpired:
                continue
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # workers the arbiter left behind
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        return code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

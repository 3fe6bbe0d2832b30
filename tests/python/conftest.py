"""Fixtures: moto in server mode and tests/fault_proxy.py in front of it, both on loopback.

Both run as subprocesses for the whole session; each test starts from a reset proxy (no faults,
no recorded calls) and builds its own VPC, so moto's state never leaks between tests.
A missing tool is a failure, never a skip: run `bash tests/tools/setup.sh` first.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
MOTO_SERVER = VENV_BIN / "moto_server"
PROXY = REPO / "tests" / "fault_proxy.py"

# Dummy credentials: moto does not check them, the SDKs insist on having some.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
    os.environ.pop(var, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


def stop(proc: subprocess.Popen):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def moto_url():
    if not os.access(MOTO_SERVER, os.X_OK):
        pytest.fail(f"{MOTO_SERVER} is missing: run `bash tests/tools/setup.sh` first", pytrace=False)
    port = free_port()
    proc = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def start_proxy(moto_url: str, tmp_path: Path) -> tuple[subprocess.Popen, int]:
    port_file = tmp_path / "proxy.port"
    proc = subprocess.Popen([sys.executable, str(PROXY), "--upstream", moto_url, "--port", "0",
                             "--port-file", str(port_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()  # "listening on PORT", flushed before serving
    if not line.startswith("listening on "):
        stop(proc)
        raise RuntimeError(f"fault_proxy did not start: {line!r} {proc.stderr.read()}")
    port = int(line.rsplit(" ", 1)[1])
    assert int(port_file.read_text()) == port
    return proc, port


@pytest.fixture(scope="session")
def proxy_proc(moto_url, tmp_path_factory):
    proc, port = start_proxy(moto_url, tmp_path_factory.mktemp("proxy"))
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


class Control:
    """Tiny client for the proxy's /_fault/ control API."""

    def __init__(self, base: str):
        self.base = base

    def _req(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def config(self, **cfg):
        return self._req("POST", "/_fault/config", cfg)

    def calls(self):
        return self._req("GET", "/_fault/calls")

    def reset(self):
        return self._req("POST", "/_fault/reset", {})


@pytest.fixture
def proxy_url(proxy_proc):
    proc, url = proxy_proc
    assert proc.poll() is None, "fault_proxy died during an earlier test"
    Control(url).reset()
    return url


@pytest.fixture
def control(proxy_url):
    return Control(proxy_url)

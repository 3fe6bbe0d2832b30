"""Fixtures: moto in server mode and tests/fault_proxy.py in front of it, both on loopback.

Both run as subprocesses for the whole session; each test starts from a reset proxy (no faults,
no recorded calls) and builds its own VPC, so moto's state never leaks between tests.
A missing tool is a failure, never a skip: run `bash tests/tools/setup.sh` first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import lambda_harness as h  # noqa: E402  (moto, the fault proxy and its control client)

PROXY = h.FAULT_PROXY

# Dummy credentials: moto does not check them, the SDKs insist on having some.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
    os.environ.pop(var, None)


@pytest.fixture(scope="session")
def sync_routes_bin() -> Path:
    """The function binary under test (SYNC_ROUTES_BIN, else the deploy binary); a missing
    one fails the test that needs it, never skips it."""
    path = h.function_binary()
    msg = h.missing_binary_message(path)
    if msg:
        pytest.fail(msg, pytrace=False)
    return path


def a_moto():
    """A moto server for the session; a missing moto fails the test, never skips it."""
    try:
        proc, url = h.start_moto()
    except FileNotFoundError as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        yield url
    finally:
        h.stop_process(proc)


@pytest.fixture(scope="session")
def moto_url():
    yield from a_moto()


@pytest.fixture(scope="session")
def sqs_url():
    """A moto of its own for SQS (the work queue): real SQS does not slow down when EC2 is
    busy, where one moto serving a write storm answered SendMessage in up to 0.65 s. The
    fault proxy sends the function's SQS calls here."""
    yield from a_moto()


def start_proxy(moto_url: str, tmp_path: Path, sqs_url: str | None = None) -> tuple[subprocess.Popen, int]:
    port_file = tmp_path / "proxy.port"
    sqs = ["--upstream-sqs", sqs_url] if sqs_url else []
    proc = subprocess.Popen([sys.executable, str(PROXY), "--upstream", moto_url, *sqs, "--port", "0",
                             "--port-file", str(port_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()  # "listening on PORT", flushed before serving
    if not line.startswith("listening on "):
        h.stop_process(proc)
        raise RuntimeError(f"fault_proxy did not start: {line!r} {proc.stderr.read()}")
    port = int(line.rsplit(" ", 1)[1])
    assert int(port_file.read_text()) == port
    return proc, port


@pytest.fixture(scope="session")
def proxy_proc(moto_url, sqs_url, tmp_path_factory):
    proc, port = start_proxy(moto_url, tmp_path_factory.mktemp("proxy"), sqs_url)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        h.stop_process(proc)


@pytest.fixture
def proxy_url(proxy_proc):
    proc, url = proxy_proc
    assert proc.poll() is None, "fault_proxy died during an earlier test"
    h.Control(url).reset()
    return url


@pytest.fixture
def control(proxy_url):
    return h.Control(proxy_url)


@pytest.fixture
def function(sync_routes_bin, proxy_url, tmp_path):
    """Starts function processes (cold) against the proxy; stops them all at the end."""
    started: list[h.FunctionProcess] = []

    def start(env: dict | None = None, name: str = "fn") -> h.FunctionProcess:
        fn = h.FunctionProcess(proxy_url, env=env, binary=sync_routes_bin, log_path=tmp_path / f"{name}.log")
        started.append(fn)
        fn.wait_ready()
        return fn

    yield start
    for fn in started:
        fn.stop()

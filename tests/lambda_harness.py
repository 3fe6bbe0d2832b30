"""Runs the real sync-routes binary as Lambda would: a mock Lambda Runtime API per process.

Used by tests/python/test_lambda_e2e.py and bench/run.py; standard library + boto3 only, and
it works outside pytest (the benchmark imports it directly).

    RuntimeApi       a threaded HTTP/1.1 (keep-alive) server on 127.0.0.1 speaking the
                     2018-06-01 Runtime API: a queue of events, `next` blocks until one is
                     queued, every /response and /error is recorded with its timings.
    FunctionProcess  spawns the binary against its own RuntimeApi; invoke(event) ->
                     Result(ok, body, seconds, ...); cpu_seconds() / peak_rss_kb() from /proc.
    EventSourceMapping  the work queue's SQS event source mapping (issue 17) on moto's SQS:
                     pollers, batches, the batching window, ReportBatchItemFailures, the
                     dead-letter queue (create_work_queue makes the queues).
    TimingProxy      a transparent forwarder that records (service, action, start, end, status)
                     of every AWS call, to put the function's wall time next to the round trips.
    start_moto / start_fault_proxy / Control / build_vpc / cloudtrail_event: the environment.

The binary: env SYNC_ROUTES_BIN, default the deploy binary of `cargo lambda build --release`,
${CARGO_TARGET_DIR:-<repo>/target}/lambda/sync-routes/bootstrap.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fault_proxy  # noqa: E402  (its HTTP server class)

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
MOTO_SERVER = VENV_BIN / "moto_server"
FAULT_PROXY = REPO / "tests" / "fault_proxy.py"
REGION = "us-east-1"
ACCOUNT = "123456789012"
FUNCTION_NAME = "SyncRoutes"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION_NAME}"
RUNTIME_PREFIX = "/2018-06-01/runtime"

BUILD_HINT = ("build it with `cargo lambda build --release` (deploy binary), or point SYNC_ROUTES_BIN "
              "at another build, e.g. SYNC_ROUTES_BIN=$CARGO_TARGET_DIR/debug/sync-routes after `cargo build`")


def deploy_binary() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return Path(target) / "lambda" / "sync-routes" / "bootstrap"


def function_binary() -> Path:
    """The binary under test: SYNC_ROUTES_BIN, else the deploy binary."""
    return Path(os.environ.get("SYNC_ROUTES_BIN") or deploy_binary())


def missing_binary_message(path: Path) -> str | None:
    if path.is_file() and os.access(path, os.X_OK):
        return None
    return f"the sync-routes binary {path} is missing or not executable: {BUILD_HINT}"


def bench_binary() -> Path | None:
    """For bench/ scripts: the function binary, or None after saying on stderr how to build it."""
    binary = function_binary()
    msg = missing_binary_message(binary)
    if msg:
        print(msg, file=sys.stderr)
        return None
    return binary


def add_mapping_args(ap, runs: int) -> None:
    """For bench/ scripts: --runs, and the event source mapping's settings as the CDK app deploys them."""
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--batch-size", type=int, default=10, help="BatchSize (the CDK app's: 10, or 100 with a window)")
    ap.add_argument("--window", type=float, default=0.0, help="MaximumBatchingWindowInSeconds (the CDK app's: 0)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        return b"".join(chunks)
    n = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(n) if n else b""


class _Server(fault_proxy.Server):
    """The fault proxy's server (threaded, TCP_NODELAY, a deep backlog), quiet about the
    connections a stopped function process leaves behind."""

    def handle_error(self, request, client_address):
        # A function process killed while its `next` was pending resets the connection.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


# --------------------------------------------------------------------------------------------
# The mock Lambda Runtime API.
# --------------------------------------------------------------------------------------------

@dataclass
class Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int
    t_queued: float  # time.perf_counter()
    t_handed: float | None = None
    t_answered: float | None = None
    ok: bool | None = None  # True: /response, False: /error
    body: bytes = b""
    error_type: str | None = None  # Lambda-Runtime-Function-Error-Type header
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def seconds(self) -> float | None:
        """Queued -> answered (what an async invoke costs, runtime overhead included)."""
        return None if self.t_answered is None else self.t_answered - self.t_queued

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class RuntimeApi:
    """One function process's Runtime API endpoint on 127.0.0.1 (free port)."""

    def __init__(self):
        self.pending: queue.Queue[Invocation] = queue.Queue()
        self.invocations: dict[str, Invocation] = {}
        self.init_errors: list[bytes] = []
        self.t_first_next: float | None = None
        self.next_requests = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "mock-lambda-runtime"
            timeout = None

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None):
                self.send_response_only(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                if path != f"{RUNTIME_PREFIX}/invocation/next":
                    self._send(404, b'{"errorMessage":"not found"}')
                    return
                with api.lock:
                    api.next_requests += 1
                    if api.t_first_next is None:
                        api.t_first_next = time.perf_counter()
                while True:
                    try:
                        inv = api.pending.get(timeout=0.2)
                        break
                    except queue.Empty:
                        if api.stopping.is_set():
                            self.close_connection = True
                            return
                inv.t_handed = time.perf_counter()
                self._send(200, inv.payload, {
                    "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                    "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
                })

            def do_POST(self):
                body = _read_body(self)
                path = self.path.split("?", 1)[0]
                m = re.fullmatch(rf"{RUNTIME_PREFIX}/invocation/([^/]+)/(response|error)", path)
                if m:
                    inv = api.invocations.get(urllib.parse.unquote(m.group(1)))
                    if inv is None or inv.done.is_set():
                        self._send(400, b'{"errorType":"InvalidRequestID"}')
                        return
                    inv.t_answered = time.perf_counter()
                    inv.ok = m.group(2) == "response"
                    inv.body = body
                    inv.error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                    self._send(202, b'{"status":"OK"}')
                    inv.done.set()
                    return
                if path == f"{RUNTIME_PREFIX}/init/error":
                    api.init_errors.append(body)
                    self._send(202, b'{"status":"OK"}')
                    return
                self._send(404, b'{"errorMessage":"not found"}')

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def enqueue(self, payload: bytes | str | dict, deadline_s: float = 60.0) -> Invocation:
        if isinstance(payload, dict) or isinstance(payload, list):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode()
        inv = Invocation(request_id=str(uuid.uuid4()), payload=payload,
                         deadline_ms=int((time.time() + deadline_s) * 1000), t_queued=time.perf_counter())
        self.invocations[inv.request_id] = inv
        self.pending.put(inv)
        return inv

    def close(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------------
# One function process.
# --------------------------------------------------------------------------------------------

@dataclass
class Result:
    ok: bool
    body: object  # the parsed JSON answer (report, or lambda_runtime's error object), else raw text
    seconds: float
    error_type: str | None
    invocation: Invocation

    @property
    def report(self) -> dict | None:
        """The sync report: the response body, or the errorMessage of a SyncFailed error."""
        if self.ok:
            return self.body if isinstance(self.body, dict) else None
        if isinstance(self.body, dict) and self.body.get("errorType") == "SyncFailed":
            try:
                return json.loads(self.body.get("errorMessage", ""))
            except ValueError:
                return None
        return None


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float | None:
    """user + sys CPU seconds of a live process, from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


def proc_status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class FunctionProcess:
    """The binary serving the Runtime API, with Lambda's environment.

    `endpoint` is AWS_ENDPOINT_URL (moto or a proxy in front of it); `env` adds or overrides
    variables (e.g. SNS_TOPIC_ARN). stderr (JSON logs) goes to `log_path` if given.
    """

    def __init__(self, endpoint: str, env: dict | None = None, binary: Path | str | None = None,
                 log_path: Path | str | None = None, name: str = FUNCTION_NAME):
        self.binary = Path(binary) if binary else function_binary()
        msg = missing_binary_message(self.binary)
        if msg:
            raise FileNotFoundError(msg)
        self.api = RuntimeApi()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/11/24/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_ENDPOINT_URL": endpoint,
            # No IMDS / profile lookups on a test machine.
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
        self.env.update({k: v for k, v in (env or {}).items() if v is not None})
        self.log_path = Path(log_path) if log_path else None
        self._log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.t_spawn = time.perf_counter()
        self.proc = subprocess.Popen([str(self.binary)], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        self.final_cpu: float | None = None
        self.final_hwm_kb: int | None = None
        self.rusage_cpu: float | None = None
        self.rusage_maxrss_kb: int | None = None
        self.exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 10.0) -> float:
        """Seconds from spawn to the first `next` request; raises if the process dies first."""
        deadline = time.monotonic() + timeout
        while self.api.t_first_next is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.binary} exited with {self.proc.returncode} before asking for an event"
                                   f"{self._log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.binary} did not ask for an event within {timeout}s{self._log_tail()}")
            time.sleep(0.0005)
        return self.api.t_first_next - self.t_spawn

    @property
    def start_to_ready(self) -> float | None:
        t = self.api.t_first_next
        return None if t is None else t - self.t_spawn

    def submit(self, event, deadline_s: float = 60.0) -> Invocation:
        return self.api.enqueue(event, deadline_s)

    def wait(self, inv: Invocation, timeout: float = 90.0) -> Result:
        end = time.monotonic() + timeout
        while not inv.done.wait(0.05):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the function process exited with {self.proc.returncode} while handling "
                                   f"{inv.request_id}{self._log_tail()}")
            if time.monotonic() > end:
                raise TimeoutError(f"no answer for {inv.request_id} within {timeout}s{self._log_tail()}")
        body = inv.json()
        return Result(ok=bool(inv.ok), body=body if body is not None else inv.body.decode("utf-8", "replace"),
                      seconds=inv.seconds, error_type=inv.error_type, invocation=inv)

    def invoke(self, event, deadline_s: float = 60.0, timeout: float = 90.0) -> Result:
        return self.wait(self.submit(event, deadline_s), timeout)

    def cpu_seconds(self) -> float | None:
        return proc_cpu_seconds(self.pid) if self.proc.poll() is None else self.final_cpu

    def peak_rss_kb(self) -> int | None:
        return proc_status_kb(self.pid, "VmHWM") if self.proc.poll() is None else self.final_hwm_kb

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self):
        """Reads CPU time (/proc, 10 ms ticks) and peak RSS, then SIGTERM (SIGKILL after 5 s)
        and reaps the process with wait4, whose rusage gives its lifetime CPU precisely
        (`rusage_cpu`, every thread included) and its peak RSS (`rusage_maxrss_kb`)."""
        if self.proc.poll() is None:
            self.final_cpu = proc_cpu_seconds(self.pid)
            self.final_hwm_kb = proc_status_kb(self.pid, "VmHWM")
            self.proc.send_signal(signal.SIGTERM)
            end = time.monotonic() + 5
            while True:
                pid, status, ru = os.wait4(self.pid, os.WNOHANG)
                if pid == self.pid:
                    self.proc.returncode = os.waitstatus_to_exitcode(status)
                    self.rusage_cpu = ru.ru_utime + ru.ru_stime
                    self.rusage_maxrss_kb = ru.ru_maxrss
                    break
                if time.monotonic() > end:
                    self.proc.kill()
                time.sleep(0.002)
        self.exit_code = self.proc.returncode
        self.api.close()
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
            self._log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def log_lines(self) -> list[dict]:
        if not self.log_path or not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out

    def _log_tail(self) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()[-15:]
        return "\n--- last log lines ---\n" + "\n".join(lines)


def run_sequentially(fn: FunctionProcess, events: list, deadline_s: float = 60.0) -> list[Result]:
    """What one Lambda execution environment does: one event at a time, in order."""
    return [fn.invoke(e, deadline_s) for e in events]


def run_concurrently(fns: list[FunctionProcess], events: list, deadline_s: float = 60.0) -> tuple[list[Result], float]:
    """Spreads `events` round-robin over `fns`, each handling its share one at a time, all
    processes at once. Returns the results in event order and the wall time (first event
    queued -> last answer)."""
    shares = [[(i, e) for i, e in enumerate(events) if i % len(fns) == k] for k in range(len(fns))]
    results: list[Result | None] = [None] * len(events)
    errors: list[BaseException] = []
    start = threading.Barrier(len(fns) + 1)

    def worker(fn, share):
        start.wait()
        try:
            for i, e in share:
                results[i] = fn.invoke(e, deadline_s)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(fn, share), daemon=True) for fn, share in zip(fns, shares)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return results, wall  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Lambda's asynchronous invocation, emulated: a queue, reserved concurrency, the deadline,
# retries, the failure destination, and the Invoke API the function hands work on with.
# --------------------------------------------------------------------------------------------

@dataclass
class AsyncRecord:
    """One attempt at one queued event."""
    event_id: int
    attempt: int  # 0 first, then Lambda's retries
    payload: bytes
    t_start: float
    t_end: float | None = None
    outcome: str | None = None  # the report's outcome, "error" (/error) or "timeout"
    report: dict | None = None
    handed_on: bool = False  # the event came from the function's own hand-off


class LambdaService:
    """Lambda's asynchronous invocation of one function, for the real binary.

    - `submit(event)` queues an event as EventBridge's async invoke does.
    - At most `concurrency` function processes (the reserved concurrency) run, each one
      event at a time, started on first use and kept warm. Events beyond that wait in the
      queue. (Lambda throttles them and retries with a back-off; a queue is the same with no
      back-off, which favours neither design.)
    - Each invocation gets `timeout_s` (the Runtime API's deadline). No answer by then: a
      timeout, and the process is killed and replaced, as Lambda does.
    - A failed invocation (/error or timeout) is retried `retries` times after
      `retry_delays_s`, then kept in `failure_queue`.
    - The Invoke API (`POST /2015-03-31/functions/{name}/invocations`, InvocationType
      Event) queues the body as a new event and answers 202: the function's hand-off. Its
      address is passed as AWS_ENDPOINT_URL_LAMBDA.
    """

    def __init__(self, endpoint: str, binary: Path | str | None = None, env: dict | None = None,
                 concurrency: int = 2, timeout_s: float = 60.0, retries: int = 2,
                 retry_delays_s: tuple[float, ...] = (60.0, 120.0), log_dir: Path | None = None,
                 name: str = FUNCTION_NAME):
        self.endpoint, self.binary, self.name = endpoint, binary, name
        self.concurrency, self.timeout_s, self.retries = concurrency, timeout_s, retries
        self.retry_delays_s = retry_delays_s
        self.log_dir = log_dir
        self.queue: queue.Queue = queue.Queue()
        self.records: list[AsyncRecord] = []
        self.failure_queue: list[bytes] = []
        self.hand_offs: list[dict] = []
        self.lock = threading.Lock()
        self.busy = 0
        self.pending = 0  # queued or running or waiting to retry
        self.idle = threading.Condition(self.lock)
        self.next_id = 0
        self.stopping = threading.Event()
        self.invoke_api = self._start_invoke_api()
        self.env = {**(env or {}), "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{self.invoke_api.server_address[1]}"}
        self.processes: list[FunctionProcess | None] = [None] * concurrency
        self.workers = [threading.Thread(target=self._slot, args=(k,), daemon=True) for k in range(concurrency)]
        for w in self.workers:
            w.start()

    def _start_invoke_api(self):
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = _read_body(self)
                m = re.fullmatch(r"/2015-03-31/functions/([^/]+)/invocations", self.path.split("?", 1)[0])
                name = urllib.parse.unquote(m.group(1)) if m else None
                if not m or name.rsplit(":", 1)[-1] not in (service.name, FUNCTION_ARN.rsplit(":", 1)[-1]):
                    reply = json.dumps({"Type": "User", "message": f"Function not found: {name}"}).encode()
                    self.send_response(404)
                    self.send_header("x-amzn-ErrorType", "ResourceNotFoundException")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                    return
                with service.lock:
                    service.hand_offs.append({"t": time.perf_counter(), "payload": json.loads(body or b"null"),
                                              "type": self.headers.get("X-Amz-Invocation-Type")})
                service._enqueue(body, handed_on=True)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return server

    def _enqueue(self, payload: bytes, attempt: int = 0, event_id: int | None = None, handed_on: bool = False,
                 new: bool = True):
        with self.lock:
            if event_id is None:
                event_id = self.next_id
                self.next_id += 1
            if new:
                self.pending += 1
        self.queue.put((event_id, attempt, payload, handed_on))

    def submit(self, event) -> None:
        payload = event if isinstance(event, bytes) else json.dumps(event).encode()
        self._enqueue(payload)

    def _process(self, slot: int) -> FunctionProcess:
        fn = self.processes[slot]
        if fn is None or not fn.alive():
            log = self.log_dir / f"slot{slot}-{time.time_ns()}.log" if self.log_dir else None
            fn = FunctionProcess(self.endpoint, env=self.env, binary=self.binary, log_path=log, name=self.name)
            fn.wait_ready()
            self.processes[slot] = fn
        return fn

    def _slot(self, slot: int):
        while not self.stopping.is_set():
            try:
                event_id, attempt, payload, handed_on = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            record = AsyncRecord(event_id, attempt, payload, time.perf_counter(), handed_on=handed_on)
            with self.lock:
                self.records.append(record)
                self.busy += 1
            fn = self._process(slot)
            inv = fn.submit(payload, deadline_s=self.timeout_s)
            answered = inv.done.wait(self.timeout_s + 1.0)
            record.t_end = time.perf_counter()
            if not answered:
                record.outcome = "timeout"
                fn.stop()  # Lambda ends the environment; the next event gets a new one
            elif not inv.ok:
                record.outcome = "error"
            else:
                body = inv.json()
                record.report = body if isinstance(body, dict) else None
                record.outcome = (record.report or {}).get("outcome", "?")
            failed = record.outcome in ("timeout", "error")
            if failed and attempt < self.retries:
                delay = self.retry_delays_s[min(attempt, len(self.retry_delays_s) - 1)]
                threading.Timer(delay, self._enqueue, args=(payload, attempt + 1, event_id),
                                kwargs={"handed_on": handed_on, "new": False}).start()
            with self.lock:
                if failed and attempt >= self.retries:
                    self.failure_queue.append(payload)
                self.busy -= 1
                if not (failed and attempt < self.retries):
                    self.pending -= 1
                self.idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Until every event (hand-offs and retries included) has ended, or `timeout`."""
        end = time.monotonic() + timeout
        with self.lock:
            while self.pending > 0:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.idle.wait(min(left, 0.5))
        return True

    def failed_invocations(self) -> list[AsyncRecord]:
        return [r for r in self.records if r.outcome in ("timeout", "error")]

    def close(self):
        self.stopping.set()
        for w in self.workers:
            w.join(timeout=2)
        for fn in self.processes:
            if fn is not None:
                fn.stop()
        self.invoke_api.shutdown()
        self.invoke_api.server_close()


# --------------------------------------------------------------------------------------------
# The work queue's event source mapping, emulated (issue 17): EventBridge -> SQS -> Lambda.
# The queue and its dead-letter queue are moto's real SQS; the poller is this file's.
# --------------------------------------------------------------------------------------------

def sqs_client(endpoint: str):
    import boto3
    return boto3.client("sqs", region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@dataclass
class WorkQueue:
    url: str
    arn: str
    dlq_url: str
    dlq_arn: str


def create_work_queue(moto_url: str, name: str | None = None, visibility_timeout_s: int = 30,
                      max_receive_count: int = 5) -> WorkQueue:
    """The work queue and its dead-letter queue in moto, as the CDK app makes them: a
    RedrivePolicy after `max_receive_count` receives, and a VisibilityTimeout (6x the function
    timeout when deployed; short in tests, so a failed record comes back quickly; it must
    still outlast an invocation, or a batch in flight is delivered a second time)."""
    name = name or f"SyncRoutesWork-{uuid.uuid4().hex[:8]}"
    c = sqs_client(moto_url)
    dlq_url = c.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = c.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = c.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": str(int(visibility_timeout_s)),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}),
    })["QueueUrl"]
    arn = c.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return WorkQueue(url, arn, dlq_url, dlq_arn)


@dataclass
class BatchInvocation:
    """One invocation of the function with one SQS batch, and what the mapping did after."""
    worker: int
    message_ids: list[str]
    bodies: list[str]
    receive_counts: list[int]  # ApproximateReceiveCount of each record, as delivered
    t_start: float  # perf_counter when the event was handed to the function
    t_end: float | None = None
    outcome: str | None = None  # "ok", "error" (/error), "timeout", "crashed", "bad-response"
    response: object = None  # the parsed answer ({"batchItemFailures": [...]}) or raw text
    failures: list[str] = field(default_factory=list)  # the itemIdentifiers named
    deleted: list[str] = field(default_factory=list)  # message ids DeleteMessageBatch removed
    delete_errors: list[dict] = field(default_factory=list)
    reports: dict[str, dict] = field(default_factory=dict)  # message id -> its sync report
    resent: list[str] = field(default_factory=list)  # put back unstarted (decision "resent")
    log: list[dict] = field(default_factory=list)  # the function's log lines of this invocation

    @property
    def seconds(self) -> float | None:
        return None if self.t_end is None else self.t_end - self.t_start

    @property
    def size(self) -> int:
        return len(self.message_ids)

    @property
    def failed(self) -> bool:
        """The invocation itself failed: the mapping deletes nothing of its batch."""
        return self.outcome != "ok"


class EventSourceMapping:
    """Lambda's SQS event source mapping of the work queue, for the real binary.

    - `max_concurrency` pollers (MaximumConcurrency), each with its own FunctionProcess,
      started on first use and kept warm; its env adds SYNC_QUEUE_URL = `queue_url` to `env`,
      and AWS_ENDPOINT_URL = `endpoint` (the fault proxy), region and dummy credentials as
      LambdaService gives them, so the function's SendMessage calls show in the proxy.
    - A poller long-polls ReceiveMessage (MaxNumberOfMessages <= `batch_size`,
      AttributeNames All, WaitTimeSeconds `wait_time_s`); from its first message it keeps
      receiving until the batch holds `batch_size` records or `batching_window_s` has
      passed (MaximumBatchingWindowInSeconds), then invokes the function with the SQS event
      and `deadline_s` (the function timeout).
    - ReportBatchItemFailures: after an answer it deletes (DeleteMessageBatch) every record
      not named in batchItemFailures. An invocation that errors, times out (the process is
      then killed and replaced, as Lambda does), crashes, or names an id that is not in the
      batch, deletes nothing: the whole batch reappears after the visibility timeout, and
      moto's redrive moves a message to the dead-letter queue on the receive after
      maxReceiveCount.
    - The queue is polled with a boto3 client straight to moto (`sqs_endpoint`, default the
      queue URL's own scheme and host, which is moto's), so the proxy counts only the
      function's calls.

    Every invocation is kept in `invocations` (BatchInvocation: records, seconds, answer,
    deletions, and each record's report from the function's log, where `handle` writes one
    JSON line with "report" and the record's message_id).
    """

    def __init__(self, endpoint: str, queue_url: str, binary: Path | str | None = None, env: dict | None = None,
                 max_concurrency: int = 2, batch_size: int = 10, batching_window_s: float = 1.0,
                 deadline_s: float = 60.0, wait_time_s: int = 1, sqs_endpoint: str | None = None,
                 log_dir: Path | str | None = None, name: str = FUNCTION_NAME):
        import tempfile
        self.endpoint, self.queue_url, self.binary, self.name = endpoint, queue_url, binary, name
        self.max_concurrency, self.batch_size = max_concurrency, batch_size
        self.batching_window_s, self.deadline_s, self.wait_time_s = batching_window_s, deadline_s, wait_time_s
        u = urllib.parse.urlsplit(queue_url)
        self.sqs_endpoint = sqs_endpoint or f"{u.scheme}://{u.netloc}"
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="sync-routes-esm-"))
        self.env = {**(env or {}), "SYNC_QUEUE_URL": queue_url}
        sqs = sqs_client(self.sqs_endpoint)
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        self.queue_arn = attrs["QueueArn"]
        redrive = json.loads(attrs.get("RedrivePolicy") or "{}")
        self.max_receive_count = int(redrive["maxReceiveCount"]) if redrive else None
        self.dlq_url = (sqs.get_queue_url(QueueName=redrive["deadLetterTargetArn"].rsplit(":", 1)[-1])["QueueUrl"]
                        if redrive else None)
        self.invocations: list[BatchInvocation] = []
        self.submitted: list[str] = []  # message ids of submit()
        self.receives: list[tuple[float, int, str, int]] = []  # (t, worker, message id, receive count)
        self.bodies: dict[str, str] = {}  # every message id received or submitted -> its body
        self.poll_errors: list[str] = []
        self.lock = threading.Lock()
        self.busy = 0  # pollers holding a batch (receiving its rest, invoking, deleting)
        self.stopping = threading.Event()
        self.processes: list[FunctionProcess | None] = [None] * max_concurrency
        self.workers = [threading.Thread(target=self._poller, args=(k,), daemon=True)
                        for k in range(max_concurrency)]
        for w in self.workers:
            w.start()

    # ---- what a test does -------------------------------------------------------------------

    def submit(self, event) -> str:
        """SendMessage of the event as the body, as an EventBridge SQS target does (a str or
        bytes is sent as it is). Returns the message id."""
        if isinstance(event, bytes):
            body = event.decode()
        elif isinstance(event, str):
            body = event
        else:
            body = json.dumps(event)
        mid = sqs_client(self.sqs_endpoint).send_message(QueueUrl=self.queue_url, MessageBody=body)["MessageId"]
        with self.lock:
            self.submitted.append(mid)
            self.bodies[mid] = body
        return mid

    def queue_counts(self) -> dict[str, int]:
        """ApproximateNumberOfMessages / NotVisible / Delayed of the work queue (moto's)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        attrs = sqs_client(self.sqs_endpoint).get_queue_attributes(QueueUrl=self.queue_url,
                                                                  AttributeNames=names)["Attributes"]
        return {n: int(attrs.get(n, 0)) for n in names}

    def wait_idle(self, timeout: float, settle_s: float = 0.5) -> bool:
        """Until the queue holds nothing visible, in flight or delayed and no poller holds a
        batch, twice `settle_s` apart; False after `timeout`."""
        end = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < end:
            with self.lock:
                busy = self.busy
            empty = busy == 0 and not any(self.queue_counts().values())
            if empty:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle_s:
                    return True
            else:
                quiet_since = None
            time.sleep(0.1)
        return False

    def dlq_messages(self) -> list[dict]:
        """Every message in the dead-letter queue: {"message_id", "body", "receive_count"}.
        Read with a long visibility timeout, then made visible again, so a second call sees
        the same."""
        if not self.dlq_url:
            return []
        c = sqs_client(self.sqs_endpoint)
        out, handles = [], []
        while True:
            got = c.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                    VisibilityTimeout=60, WaitTimeSeconds=0).get("Messages", [])
            if not got:
                break
            for m in got:
                out.append({"message_id": m["MessageId"], "body": m["Body"],
                            "receive_count": int(m.get("Attributes", {}).get("ApproximateReceiveCount", 0))})
                handles.append(m["ReceiptHandle"])
        for i in range(0, len(handles), 10):
            c.change_message_visibility_batch(QueueUrl=self.dlq_url, Entries=[
                {"Id": str(k), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for k, h in enumerate(handles[i:i + 10])])
        return out

    def failed_invocations(self) -> list[BatchInvocation]:
        return [inv for inv in self.invocations if inv.failed]

    def continuations(self) -> list[str]:
        """Bodies of the messages received that no submit() sent: the function's own."""
        with self.lock:
            own = set(self.submitted)
            return [b for mid, b in self.bodies.items() if mid not in own]

    def reports(self) -> list[dict]:
        """Every record's report, in the order the invocations started."""
        with self.lock:
            invocations = sorted(self.invocations, key=lambda inv: inv.t_start)
        return [r for inv in invocations for r in inv.reports.values()]

    def close(self):
        self.stopping.set()
        for w in self.workers:
            w.join(timeout=self.wait_time_s + self.deadline_s + 5)
        for fn in self.processes:
            if fn is not None:
                fn.stop()

    # ---- the mapping --------------------------------------------------------------------

    def _process(self, slot: int) -> FunctionProcess:
        fn = self.processes[slot]
        if fn is None or not fn.alive():
            if fn is not None:
                fn.stop()
            log = self.log_dir / f"esm-slot{slot}-{time.time_ns()}.log"
            fn = FunctionProcess(self.endpoint, env=self.env, binary=self.binary, log_path=log, name=self.name)
            fn.wait_ready()
            self.processes[slot] = fn
        return fn

    def _receive(self, sqs, worker: int, n: int, wait_s: int) -> list[dict]:
        got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=max(1, min(10, n)),
                                  AttributeNames=["All"], MessageAttributeNames=["All"],
                                  WaitTimeSeconds=wait_s).get("Messages", [])
        now = time.perf_counter()
        with self.lock:
            for m in got:
                self.bodies.setdefault(m["MessageId"], m["Body"])
                self.receives.append((now, worker, m["MessageId"],
                                      int(m.get("Attributes", {}).get("ApproximateReceiveCount", 0))))
        return got

    def _poller(self, slot: int):
        sqs = sqs_client(self.sqs_endpoint)
        while not self.stopping.is_set():
            try:
                batch = self._receive(sqs, slot, self.batch_size, self.wait_time_s)
                if not batch:
                    continue
                with self.lock:
                    self.busy += 1
                try:
                    first = time.monotonic()
                    while len(batch) < self.batch_size and not self.stopping.is_set():
                        left = self.batching_window_s - (time.monotonic() - first)
                        if left <= 0:
                            break
                        more = self._receive(sqs, slot, self.batch_size - len(batch), 0)
                        batch += more
                        if not more:
                            time.sleep(min(0.05, left))
                    self._invoke(slot, sqs, batch)
                finally:
                    with self.lock:
                        self.busy -= 1
            except Exception as exc:  # noqa: BLE001 - a poller keeps polling, as the ESM does
                if self.stopping.is_set():
                    break
                with self.lock:
                    self.poll_errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.2)

    def sqs_event(self, messages: list[dict]) -> dict:
        """The event Lambda builds for a batch of ReceiveMessage results."""
        def attribute(a: dict) -> dict:
            return {"stringValue": a.get("StringValue"), "binaryValue": a.get("BinaryValue"),
                    "stringListValues": [], "binaryListValues": [], "dataType": a.get("DataType")}

        return {"Records": [{
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": dict(m.get("Attributes") or {}),
            "messageAttributes": {k: attribute(v) for k, v in (m.get("MessageAttributes") or {}).items()},
            "md5OfBody": m.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": REGION,
        } for m in messages]}

    def _invoke(self, slot: int, sqs, batch: list[dict]):
        fn = self._process(slot)
        log_from = fn.log_path.stat().st_size if fn.log_path and fn.log_path.exists() else 0
        ids = [m["MessageId"] for m in batch]
        record = BatchInvocation(
            worker=slot, message_ids=ids, bodies=[m["Body"] for m in batch],
            receive_counts=[int(m.get("Attributes", {}).get("ApproximateReceiveCount", 0)) for m in batch],
            t_start=time.perf_counter())
        inv = fn.submit(self.sqs_event(batch), deadline_s=self.deadline_s)
        end = time.monotonic() + self.deadline_s + 1.0
        while not inv.done.wait(0.05):
            if not fn.alive():
                record.outcome = "crashed"
                break
            if time.monotonic() > end:
                record.outcome = "timeout"
                break
        record.t_end = time.perf_counter()
        record.log = self._log_since(fn, log_from)
        if record.outcome == "timeout":
            fn.stop()  # Lambda ends the environment; the next batch gets a new one
        if record.outcome is None and not inv.ok:
            record.outcome = "error"
        if record.outcome is None:
            record.response = inv.json() if inv.json() is not None else inv.body.decode("utf-8", "replace")
            items = (record.response or {}).get("batchItemFailures") if isinstance(record.response, dict) else None
            named = [i.get("itemIdentifier") if isinstance(i, dict) else None for i in (items or [])]
            if not isinstance(record.response, dict) or any(n not in ids for n in named):
                record.outcome = "bad-response"  # Lambda fails the whole batch
            else:
                record.outcome = "ok"
                record.failures = named
        elif record.outcome == "error":
            record.response = inv.json() if inv.json() is not None else inv.body.decode("utf-8", "replace")
        current = None
        for line in record.log:
            if line.get("decision") == "record":
                current = line.get("message_id")
            elif line.get("decision") == "resent":
                record.resent.append(line.get("message_id"))
            # Records of a batch run at once: a report line names its record's message id
            # (older binaries wrote it right after the record's "record" line instead).
            key = line.get("message_id") if "report" in line else None
            key = key or current
            if "report" in line and key is not None:
                try:
                    record.reports[key] = json.loads(line["report"])
                except (TypeError, ValueError):
                    record.reports[key] = {"raw": line["report"]}
                current = None
        if record.outcome == "ok":
            keep = set(record.failures)
            done = [m for m in batch if m["MessageId"] not in keep]
            for i in range(0, len(done), 10):
                chunk = done[i:i + 10]
                answer = sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                    {"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(chunk)])
                for ok in answer.get("Successful", []):
                    record.deleted.append(chunk[int(ok["Id"])]["MessageId"])
                record.delete_errors += answer.get("Failed", [])
        with self.lock:
            self.invocations.append(record)

    @staticmethod
    def _log_since(fn: FunctionProcess, offset: int) -> list[dict]:
        """The function's JSON log lines written after `offset` (as FunctionProcess.log_lines
        reads them: a line that is not JSON comes back as {"raw": line})."""
        if not fn.log_path or not fn.log_path.exists():
            return []
        with open(fn.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        out = []
        for line in text.splitlines():
            try:
                value = json.loads(line)
                out.append(value if isinstance(value, dict) else {"raw": line})
            except ValueError:
                out.append({"raw": line})
        return out


# --------------------------------------------------------------------------------------------
# moto, the fault proxy, and a timing forwarder.
# --------------------------------------------------------------------------------------------

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


def stop_process(proc: subprocess.Popen):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_moto() -> tuple[subprocess.Popen, str]:
    """moto_server on 127.0.0.1 (also the tests' `moto_url` fixture)."""
    if not os.access(MOTO_SERVER, os.X_OK):
        raise FileNotFoundError(f"{MOTO_SERVER} is missing: run `bash tests/tools/setup.sh` first")
    port = free_port()
    proc = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, "moto_server")
    except Exception:
        stop_process(proc)
        raise
    return proc, f"http://127.0.0.1:{port}"


def reset_moto(moto_url: str):
    req = urllib.request.Request(moto_url + "/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def start_fault_proxy(upstream: str, sqs_upstream: str | None = None) -> tuple[subprocess.Popen, str]:
    """tests/fault_proxy.py in front of `upstream`, and of `sqs_upstream` for SQS if given
    (same command as conftest.py)."""
    sqs = ["--upstream-sqs", sqs_upstream] if sqs_upstream else []
    proc = subprocess.Popen([sys.executable, str(FAULT_PROXY), "--upstream", upstream, *sqs, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        stop_process(proc)
        raise RuntimeError(f"fault_proxy did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.rsplit(' ', 1)[1])}"


@contextlib.contextmanager
def running_moto():
    """`start_moto`, stopped on the way out: its URL."""
    proc, url = start_moto()
    try:
        yield url
    finally:
        stop_process(proc)


@contextlib.contextmanager
def running_fault_proxy(upstream: str, sqs_upstream: str | None = None):
    """`start_fault_proxy`, stopped on the way out: its URL."""
    proc, url = start_fault_proxy(upstream, sqs_upstream)
    try:
        yield url
    finally:
        stop_process(proc)


@contextlib.contextmanager
def moto_and_fault_proxy():
    """For bench/ scripts: moto and the fault proxy in front of it, (moto_url, proxy_url),
    both stopped on the way out."""
    with running_moto() as moto_url, running_fault_proxy(moto_url) as proxy_url:
        yield moto_url, proxy_url


@contextlib.contextmanager
def moto_sqs_and_fault_proxy():
    """As `moto_and_fault_proxy`, with a second moto for SQS alone behind the same proxy (as
    conftest.py's `sqs_url`; the work queue goes there): (moto_url, sqs_url, proxy_url)."""
    with running_moto() as moto_url, running_moto() as sqs_url, \
            running_fault_proxy(moto_url, sqs_url) as proxy_url:
        yield moto_url, sqs_url, proxy_url


class Control:
    """Client for the fault proxy's /_fault/ control API (the tests' `control` fixture)."""

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


_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/([^/]+)/aws4_request")
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "trailers", "transfer-encoding", "upgrade", "proxy-connection"}


@dataclass
class TimedCall:
    service: str
    action: str | None
    params: dict
    t_start: float  # perf_counter when the request was read
    t_end: float  # perf_counter when the answer was sent
    status: int

    @property
    def seconds(self) -> float:
        return self.t_end - self.t_start


class TimingProxy:
    """A transparent HTTP/1.1 keep-alive forwarder on 127.0.0.1 that times every AWS call.

    Durations are measured from the moment the request is read to the moment the answer is
    written: the upstream's service time plus this proxy's own forwarding (a fresh loopback
    connection per call, as tests/fault_proxy.py does).
    """

    def __init__(self, upstream: str):
        u = urllib.parse.urlsplit(upstream)
        self.up_host, self.up_port = u.hostname, u.port or 80
        self.calls: list[TimedCall] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = None

            def log_message(self, *args):
                pass

            def _any(self):
                t0 = time.perf_counter()
                body = _read_body(self)
                params = {}
                if "x-www-form-urlencoded" in (self.headers.get("Content-Type") or "").lower():
                    params = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
                m = _SCOPE.search(self.headers.get("Authorization") or "")
                service = m.group(2) if m else "unknown"
                conn = http.client.HTTPConnection(proxy.up_host, proxy.up_port, timeout=60)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        if k.lower() in _HOP or k.lower() in ("content-length", "expect"):
                            continue
                        conn.putheader(k, v)
                    conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body)
                    resp = conn.getresponse()
                    status, rbody, rheaders = resp.status, resp.read(), resp.getheaders()
                finally:
                    conn.close()
                self.send_response_only(status, None)
                for k, v in rheaders:
                    if k.lower() in _HOP or k.lower() == "content-length":
                        continue
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(rbody)))
                self.end_headers()
                self.wfile.write(rbody)
                self.wfile.flush()
                call = TimedCall(service, params.get("Action"), params, t0, time.perf_counter(), status)
                with proxy.lock:
                    proxy.calls.append(call)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def take(self) -> list[TimedCall]:
        """The calls recorded so far, clearing the record."""
        with self.lock:
            calls, self.calls = self.calls, []
        return calls

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def critical_path_seconds(calls: list[TimedCall]) -> float:
    """The API time one event cannot avoid: its reads one after the other, then its writes
    side by side (the slowest), then the notice."""
    reads = sum(c.seconds for c in calls if c.action == "DescribeRouteTables")
    writes = [c.seconds for c in calls if c.action in ("CreateRoute", "ReplaceRoute")]
    publish = sum(c.seconds for c in calls if c.action == "Publish")
    return reads + (max(writes) if writes else 0.0) + publish


# --------------------------------------------------------------------------------------------
# The VPC, routes and events (boto3 straight to moto, so proxy counts stay the function's).
# --------------------------------------------------------------------------------------------

def ec2_client(endpoint: str):
    import boto3
    return boto3.client("ec2", region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def sns_client(endpoint: str):
    import boto3
    return boto3.client("sns", region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def create_topic(endpoint: str, name: str | None = None) -> str:
    return sns_client(endpoint).create_topic(Name=name or f"sync-routes-{uuid.uuid4().hex[:8]}")["TopicArn"]


def build_vpc(endpoint: str, custom_tables: int = 4, enis: int = 2, cidr: str = "10.0.0.0/16") -> dict:
    """A VPC with its main table, `custom_tables` custom tables and `enis` ENIs."""
    c = ec2_client(endpoint)
    vpc = c.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    net = cidr.split("/")[0].rsplit(".", 2)[0]
    subnet = c.create_subnet(VpcId=vpc, CidrBlock=f"{net}.1.0/24")["Subnet"]["SubnetId"]
    main = c.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}]
    )["RouteTables"][0]["RouteTableId"]
    customs = [c.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"] for _ in range(custom_tables)]
    eni_ids = [c.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
               for _ in range(enis)]
    return {"vpc": vpc, "subnet": subnet, "main": main, "customs": customs, "enis": eni_ids}


def route_cidrs(n: int, base: str = "10.{}.0.0/16", start: int = 100) -> list[str]:
    """n distinct destinations outside the VPC's 10.0.0.0/16."""
    return [base.format(start + i) for i in range(n)]


def write_main_routes(endpoint: str, ids: dict, cidrs: list[str], enis: list[str] | None = None,
                      call: str = "create") -> list[tuple[str, str]]:
    """Writes each CIDR to the main table (ENIs round-robin); returns [(cidr, eni)]."""
    c = ec2_client(endpoint)
    enis = enis or ids["enis"]
    out = []
    for i, cidr in enumerate(cidrs):
        eni = enis[i % len(enis)]
        fn = c.create_route if call == "create" else c.replace_route
        fn(RouteTableId=ids["main"], DestinationCidrBlock=cidr, NetworkInterfaceId=eni)
        out.append((cidr, eni))
    return out


def cloudtrail_event(table_id: str, cidr: str, eni: str, name: str = "CreateRoute", region: str = REGION,
                     error_code: str | None = None) -> dict:
    """The EventBridge envelope of the CloudTrail record of a route call (as demo_vpc.py builds)."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/network-admin",
                         "accountId": ACCOUNT, "userName": "network-admin"},
        "eventTime": now,
        "eventSource": "ec2.amazonaws.com",
        "eventName": name,
        "awsRegion": region,
        "requestParameters": {"routeTableId": table_id, "destinationCidrBlock": cidr, "networkInterfaceId": eni},
        "responseElements": {"_return": True},
        "eventID": str(uuid.uuid4()),
        "eventType": "AwsApiCall",
        "managementEvent": True,
    }
    if error_code:
        detail["errorCode"] = error_code
        detail["errorMessage"] = "injected"
        detail["responseElements"] = None
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.ec2", "account": ACCOUNT, "time": now, "region": region, "resources": [],
            "detail": detail}


def routes_by_table(endpoint: str, vpc: str) -> dict[str, dict[str, str]]:
    """{table id: {destination: target}} for every table of the VPC, read from moto."""
    c = ec2_client(endpoint)
    out = {}
    for t in c.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]:
        routes = {}
        for r in t.get("Routes", []):
            dest = r.get("DestinationCidrBlock") or r.get("DestinationIpv6CidrBlock") or r.get("DestinationPrefixListId")
            target = next((r[k] for k in ("NetworkInterfaceId", "GatewayId", "NatGatewayId", "TransitGatewayId",
                                          "VpcPeeringConnectionId", "InstanceId") if r.get(k)), "?")
            routes[dest] = target
        out[t["RouteTableId"]] = routes
    return out

"""Helpers for the REST API tests: run the real daemon, talk HTTP to it, record checks.

Standard library only. Every test prints one PASS/FAIL line per check, "skipped: <why>" and
exits 77 when the host cannot run it, 1 when a check failed, 0 otherwise.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

PREFIX = "/packet_capture/capture"

failures = []


def log(msg):
    print(msg, flush=True)


def check(ok, what, detail=""):
    if ok:
        log(f"PASS: {what}")
    else:
        log(f"FAIL: {what}" + (f": {detail}" if detail else ""))
        failures.append(what)
    return ok


def skip(reason):
    log(f"skipped: {reason}")
    sys.exit(77)


def finish():
    """Exit status for the checks recorded so far."""
    if failures:
        log(f"FAILED: {len(failures)} check(s)")
        for f in failures:
            log(f"  - {f}")
        return 1
    log("PASSED")
    return 0


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_busy(port, host="127.0.0.1"):
    """True when something listens on (or holds) host:port. Connections of an earlier run
    lingering in TIME_WAIT do not count: the daemon binds with SO_REUSEADDR too."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body        # bytes
        self._json = None

    def json(self):
        if self._json is None:
            self._json = json.loads(self.body.decode("utf-8"))
        return self._json

    def json_or_none(self):
        try:
            return self.json()
        except (ValueError, UnicodeDecodeError):
            return None

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class Daemon:
    """`jarvis-capture serve` in a child process. `prefix` goes before the binary (e.g. setpriv);
    stderr is collected line by line by a thread."""

    def __init__(self, jc, args=(), port=None, host="127.0.0.1", prefix=(), tls_context=None,
                 token=None, env=None):
        self.host = host
        self.port = port if port is not None else free_port()
        self.tls_context = tls_context
        self.token = token
        self.cmd = list(prefix) + [jc, "serve"] + list(args)
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.lines = []
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._err.start()
        self._out.start()
        self.stdout = ""

    @classmethod
    def listen(cls, jc, args=(), port=None, **kw):
        """A daemon told to listen on 127.0.0.1:PORT (a free one by default)."""
        port = port if port is not None else free_port()
        return cls(jc, ["--listen", f"127.0.0.1:{port}"] + list(args), port=port, **kw)

    def _read_err(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def _read_out(self):
        self.stdout = self.proc.stdout.read()

    def wait_ready(self, timeout=15):
        """Waits until GET /healthz answers 200; raises if the daemon exits first."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._err.join(2)
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.lines}")
            try:
                r = self.request("GET", "/healthz", timeout=2)
                if r.status == 200:
                    return self
                last = r
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise RuntimeError(f"daemon not ready on port {self.port}: {last}; stderr {self.lines}")

    def connection(self, timeout=10):
        if self.tls_context is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.tls_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, raw=None, headers=None, timeout=10,
                auth=True):
        """`body` is sent as JSON; `raw` (bytes or str) as is. Returns a Response."""
        h = {}
        if body is not None:
            raw = json.dumps(body)
            h["Content-Type"] = "application/json"
        elif raw is not None:
            h["Content-Type"] = "application/json"
        if auth and self.token is not None:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(headers or {})
        if isinstance(raw, str):
            raw = raw.encode()
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=raw, headers=h)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        if body is None and "raw" not in kw:
            kw["raw"] = b""
        return self.request("POST", path, body=body, **kw)

    def api(self, method, route, body=None, **kw):
        """A request to PREFIX + route."""
        if method == "POST" and body is None and "raw" not in kw:
            kw["raw"] = b""
        return self.request(method, PREFIX + route, body=body, **kw)

    def healthy(self):
        try:
            return self.get("/healthz", timeout=5).status == 200
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signals the daemon; returns its exit code, or None if it hung (then it is killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._err.join(5)
        self._out.join(5)
        return rc

    def wait_exit(self, timeout=10):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._err.join(5)
        self._out.join(5)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._err.join(5)
        self._out.join(5)


def run_daemon_once(jc, args, timeout=10):
    """Runs `serve ARGS` expecting it to exit by itself; returns (rc, stderr lines). rc is None
    when it was still running after `timeout` seconds (it is killed then)."""
    p = subprocess.Popen([jc, "serve"] + list(args), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=timeout)
        return p.returncode, err.splitlines()
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        return None, err.splitlines()


def detail_locs(resp):
    """[(tuple(loc), type)] of a 422 body, or None when the shape is wrong."""
    j = resp.json_or_none()
    if not isinstance(j, dict) or not isinstance(j.get("detail"), list):
        return None
    out = []
    for e in j["detail"]:
        if not isinstance(e, dict) or not {"type", "loc", "msg", "input"} <= e.keys():
            return None
        if not isinstance(e["loc"], list) or not isinstance(e["msg"], str):
            return None
        out.append((tuple(e["loc"]), e["type"]))
    return out


def is_detail_string(resp):
    j = resp.json_or_none()
    return isinstance(j, dict) and isinstance(j.get("detail"), str) and j["detail"] != ""

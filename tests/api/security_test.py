#!/usr/bin/python3
"""Security of `jarvis-capture serve`: bearer token, loopback by default, TLS, configuration.

Usage: security_test.py JARVIS_CAPTURE [--default-listener]

Without the option: the token file's permissions (0644 refused at start, one error line),
401 without or with a wrong token (WWW-Authenticate: Bearer), 200 with the right one, /healthz
open; HTTPS with a self-signed certificate made here by openssl (trusted explicitly; plain
HTTP to it fails); the TOML configuration ([server] listen works, an unknown key is refused
with one line naming it, flags win over the file). Every daemon listens on a free loopback
port.

With --default-listener: `serve` with no --listen must listen on 127.0.0.1:8000 and nowhere
else (checked with `ss -ltnp`), and stop on SIGTERM with exit 0. Exit 77 ("skipped: port 8000
busy") when something already holds that port.

Exit 0 pass, 1 fail, 77 skipped.
"""

import http.client
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apitest import (PREFIX, Daemon, check, finish, free_port, log, port_busy,  # noqa: E402
                     run_daemon_once, skip)

TOKEN = "s3cret-token-for-the-test"


def one_error_line(rc, lines, what, mentions):
    check(rc == 1, f"{what}: exit status 1", f"exit {rc}, stderr {lines}")
    check(len(lines) == 1 and lines[0].startswith("jarvis-capture: "),
          f"{what}: exactly one error line", str(lines))
    for m in mentions:
        check(any(m in l for l in lines), f"{what}: the line names {m}", str(lines))


def write(path, text, mode):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def token_cases(jc, work):
    log("-- bearer token")
    loose = write(os.path.join(work, "loose.token"), TOKEN + "\n", 0o644)
    rc, lines = run_daemon_once(jc, ["--listen", f"127.0.0.1:{free_port()}", "--token-file",
                                     loose])
    one_error_line(rc, lines, "token file mode 0644", [loose, "chmod 600"])
    empty = write(os.path.join(work, "empty.token"), "\n", 0o600)
    rc, lines = run_daemon_once(jc, ["--listen", f"127.0.0.1:{free_port()}", "--token-file",
                                     empty])
    one_error_line(rc, lines, "empty token file", [empty])
    rc, lines = run_daemon_once(jc, ["--listen", f"127.0.0.1:{free_port()}", "--token-file",
                                     os.path.join(work, "absent.token")])
    one_error_line(rc, lines, "missing token file", ["absent.token"])

    good = write(os.path.join(work, "api.token"), TOKEN + "\n", 0o600)
    d = Daemon.listen(jc, ["--token-file", good], token=TOKEN)
    try:
        d.wait_ready()
        check(any("bearer token required" in l for l in d.lines),
              "the serving line says a token is required", str(d.lines[:2]))
        for method, path in [("GET", PREFIX + "/status"), ("POST", PREFIX + "/start"),
                             ("GET", PREFIX + "/backends"), ("GET", "/metrics"),
                             ("GET", "/openapi.json")]:
            r = d.request(method, path, auth=False, raw=b"" if method == "POST" else None)
            check(r.status == 401 and r.headers.get("www-authenticate") == "Bearer" and
                  r.json_or_none() == {"detail": "Not authenticated"},
                  f"{method} {path} without a token: 401, WWW-Authenticate: Bearer",
                  f"{r.status} {r.headers.get('www-authenticate')} {r.body[:200]!r}")
        for name, header in [("wrong token", "Bearer not-" + TOKEN),
                             ("token with a suffix", f"Bearer {TOKEN}x"),
                             ("token prefix only", "Bearer " + TOKEN[:-1]),
                             ("Basic scheme", "Basic " + TOKEN),
                             ("empty bearer", "Bearer ")]:
            r = d.request("GET", PREFIX + "/status", auth=False,
                          headers={"Authorization": header})
            check(r.status == 401 and r.headers.get("www-authenticate") == "Bearer",
                  f"{name}: 401", f"{r.status} {r.body[:200]!r}")
        r = d.request("POST", PREFIX + "/start", body={"interface": 5}, auth=False)
        check(r.status == 401, "an invalid body without a token: 401 before validation (422)",
              f"{r.status}")
        r = d.get(PREFIX + "/status")
        check(r.status == 200 and r.json_or_none().get("running") is False,
              "right token: 200", f"{r.status} {r.body[:200]!r}")
        r = d.get("/metrics")
        check(r.status == 200 and b"jarvis_capture_running" in r.body,
              "right token: /metrics 200", f"{r.status}")
        r = d.get("/healthz", auth=False)
        check(r.status == 200 and r.json_or_none() == {"status": "ok"},
              "/healthz without a token: 200", f"{r.status} {r.body[:200]!r}")
        check(not any(TOKEN in l for l in d.lines), "the token never appears in the log")
    finally:
        rc = d.stop()
    check(rc == 0, "token daemon: SIGTERM exits 0", f"exit {rc}")


def tls_cases(jc, work):
    log("-- TLS")
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, text=True,
                       timeout=60)
    if not check(p.returncode == 0, "openssl makes a self-signed certificate", p.stderr[-300:]):
        return
    os.chmod(key, 0o600)
    ctx = ssl.create_default_context(cafile=cert)
    d = Daemon.listen(jc, ["--tls-cert", cert, "--tls-key", key], tls_context=ctx)
    try:
        d.wait_ready()
        check(any("serving on https://127.0.0.1:" in l for l in d.lines),
              "the serving line says https", str(d.lines[:2]))
        r = d.get("/healthz")
        check(r.status == 200 and r.json_or_none() == {"status": "ok"},
              "GET /healthz over https, trusting the test's certificate: 200", repr(r))
        r = d.get(PREFIX + "/status")
        check(r.status == 200 and "running" in (r.json_or_none() or {}),
              "GET status over https: 200", repr(r))

        # Plain HTTP to the TLS port gets no HTTP answer.
        plain = None
        try:
            conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
            conn.request("GET", "/healthz")
            plain = conn.getresponse().status
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            plain = type(e).__name__
        check(plain != 200 and not isinstance(plain, int),
              "plain http to the TLS port fails", f"got {plain}")

        # Without trusting the certificate, verification fails.
        untrusted = None
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", d.port, timeout=5,
                                               context=ssl.create_default_context())
            conn.request("GET", "/healthz")
            untrusted = conn.getresponse().status
        except ssl.SSLCertVerificationError:
            untrusted = "verification failed"
        except (OSError, http.client.HTTPException) as e:
            untrusted = type(e).__name__
        check(untrusted == "verification failed",
              "https without trusting the self-signed certificate: verification fails",
              str(untrusted))
        check(d.get("/healthz").status == 200, "https still serves after the failed attempts")
    finally:
        rc = d.stop()
    check(rc == 0, "TLS daemon: SIGTERM exits 0", f"exit {rc}")

    rc, lines = run_daemon_once(jc, ["--listen", f"127.0.0.1:{free_port()}", "--tls-cert",
                                     cert])
    one_error_line(rc, lines, "--tls-cert without --tls-key", ["--tls-key"])
    rc, lines = run_daemon_once(jc, ["--listen", f"127.0.0.1:{free_port()}", "--tls-cert",
                                     os.path.join(work, "nope.pem"), "--tls-key", key])
    one_error_line(rc, lines, "a certificate that does not exist", ["nope.pem"])


def config_cases(jc, work):
    log("-- configuration file")
    port = free_port()
    token = write(os.path.join(work, "conf.token"), TOKEN + "\n", 0o600)
    conf = write(os.path.join(work, "good.toml"),
                 f'[server]\nlisten = "127.0.0.1:{port}"\ntoken_file = "{token}"\n'
                 f'max_body_bytes = 1024\nlog_level = "info"\n', 0o644)
    d = Daemon(jc, ["--config", conf], port=port, token=TOKEN)
    try:
        d.wait_ready()
        check(d.get("/healthz").status == 200, f"[server] listen: serves on 127.0.0.1:{port}")
        check(d.get(PREFIX + "/status", auth=False).status == 401,
              "[server] token_file: requests without the token get 401")
        r = d.post(PREFIX + "/start", raw=b'{"interface":"' + b"x" * 2000 + b'"}')
        check(r.status == 413, "[server] max_body_bytes 1024: a 2 KB body gets 413",
              f"{r.status}")
    finally:
        rc = d.stop()
    check(rc == 0, "configured daemon: SIGTERM exits 0", f"exit {rc}")

    # A flag wins over the file.
    other = free_port()
    d = Daemon(jc, ["--config", conf, "--listen", f"127.0.0.1:{other}"], port=other,
               token=TOKEN)
    try:
        d.wait_ready()
        check(d.get("/healthz").status == 200, "--listen wins over [server] listen")
    finally:
        d.stop()

    bad = write(os.path.join(work, "unknown.toml"),
                f'[server]\nlisten = "127.0.0.1:{free_port()}"\nlisten_port = 8000\n', 0o644)
    rc, lines = run_daemon_once(jc, ["--config", bad])
    one_error_line(rc, lines, "unknown key in the configuration", ["listen_port", bad])
    sever = write(os.path.join(work, "sever.toml"),
                  f'[sever]\nlisten = "127.0.0.1:{free_port()}"\n', 0o644)
    rc, lines = run_daemon_once(jc, ["--config", sever])
    one_error_line(rc, lines, "a misspelt table ([sever])", ["sever", sever])
    broken = write(os.path.join(work, "broken.toml"), "[server\nlisten = 1\n", 0o644)
    rc, lines = run_daemon_once(jc, ["--config", broken])
    one_error_line(rc, lines, "a configuration that is not TOML", [broken])
    typed = write(os.path.join(work, "typed.toml"), "[server]\nlisten = 8000\n", 0o644)
    rc, lines = run_daemon_once(jc, ["--config", typed])
    one_error_line(rc, lines, "listen given as a number", ["server.listen"])


def listeners_of(pid):
    """Local addresses of the TCP listeners of process `pid`, from `ss -ltnp`."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10).stdout
    found = []
    for line in out.splitlines():
        if re.search(rf"pid={pid},", line):
            found.append(line.split()[3])
    return found


def default_listener_case(jc):
    if shutil.which("ss") is None:
        skip("ss (iproute2) is not installed")
    if port_busy(8000):
        skip("port 8000 busy")
    log("-- serve with no --listen")
    d = Daemon(jc, [], port=8000)
    rc, dt = None, -1.0
    try:
        try:
            d.wait_ready()
        except RuntimeError as e:
            if any("Address already in use" in l for l in d.lines):
                skip("port 8000 busy")  # taken between the check and the start
            raise
        check(any(l.endswith("serving on http://127.0.0.1:8000") for l in d.lines),
              "the serving line says http://127.0.0.1:8000", str(d.lines[:2]))
        found = listeners_of(d.proc.pid)
        check(found == ["127.0.0.1:8000"],
              "the process's only listener is 127.0.0.1:8000 (ss -ltnp)", str(found))
        check(d.get("/healthz").status == 200, "GET http://127.0.0.1:8000/healthz: 200")
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        rc = d.wait_exit(timeout=5)
        dt = time.monotonic() - t0
    finally:
        d.kill()
    check(rc == 0, f"SIGTERM: exit 0 within 5 s (took {dt:.2f} s)", f"exit {rc}")
    check(any(l.endswith("SIGTERM: stopping") for l in d.lines) and
          d.lines and d.lines[-1].endswith("stopped"),
          "stderr says SIGTERM: stopping, then stopped", str(d.lines[-3:]))


def main():
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and
                                       sys.argv[2] != "--default-listener"):
        print(f"usage: {sys.argv[0]} JARVIS_CAPTURE [--default-listener]", file=sys.stderr)
        return 2
    jc = os.path.abspath(sys.argv[1])
    if not os.access(jc, os.X_OK):
        log(f"FAIL: {jc} is not an executable")
        return 1
    if len(sys.argv) == 3:
        default_listener_case(jc)
        return finish()
    if shutil.which("openssl") is None:
        skip("openssl is not installed")
    work = tempfile.mkdtemp(prefix="jarvis-api-security-")
    try:
        token_cases(jc, work)
        tls_cases(jc, work)
        config_cases(jc, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())

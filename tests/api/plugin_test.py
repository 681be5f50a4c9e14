#!/usr/bin/python3
"""The HTTP server plugin (src/api/http.h): `serve` loads jarvis-capture-http.so, nothing else does.

Usage: plugin_test.py JARVIS_CAPTURE BUILD_DIR

- The binary does not depend on cpp-httplib or OpenSSL (readelf NEEDED); the plugin does, and
  exports one symbol, jarvis_http_plugin.
- An installed tree (`cmake --install BUILD --prefix TMP`): TMP/bin/jarvis-capture serves with
  the plugin from TMP/lib/jarvis-capture/.
- A binary alone (no plugin beside it): `serve` exits 1 with one line naming the plugin and the
  places looked in; `capture -r` still works there. JARVIS_HTTP_PLUGIN pointing at the real
  plugin serves; pointing at another shared object is refused as not the plugin.

Exit 0 pass, 1 fail.
"""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apitest import Daemon, check, finish, log, run_daemon_once  # noqa: E402

PLUGIN = "jarvis-capture-http.so"
PCAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared",
                        "pcaps")


def needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True,
                         check=True).stdout
    return [l.split("[", 1)[1].rstrip("]") for l in out.splitlines() if "(NEEDED)" in l]


def serves(jc, env=None):
    d = Daemon.listen(jc, env=env)
    try:
        d.wait_ready()
        ok = d.get("/healthz").status == 200
        return ok, d.stop() == 0, d.lines
    except RuntimeError as e:
        d.kill()
        return False, False, [str(e)]


def main():
    jc, build = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    plugin = os.path.join(os.path.dirname(jc), PLUGIN)

    log("-- dependencies")
    libs = needed(jc)
    for lib in ("libcpp-httplib", "libssl", "libcrypto", "libbrotli"):
        check(not any(l.startswith(lib) for l in libs), f"the binary does not link {lib}",
              str(libs))
    check(os.path.isfile(plugin), f"{PLUGIN} is built beside the binary", plugin)
    check(any(l.startswith("libcpp-httplib") for l in needed(plugin)),
          "the plugin links cpp-httplib", str(needed(plugin)))
    syms = subprocess.run(["nm", "-D", "--defined-only", plugin], capture_output=True,
                          text=True, check=True).stdout.split()
    check("jarvis_http_plugin" in syms, "the plugin exports jarvis_http_plugin", "")

    work = tempfile.mkdtemp(prefix="jarvis-http-plugin-")
    try:
        log("-- installed tree")
        prefix = os.path.join(work, "prefix")
        p = subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                           capture_output=True, text=True)
        check(p.returncode == 0, "cmake --install succeeds", p.stderr[-400:])
        installed = os.path.join(prefix, "bin", "jarvis-capture")
        check(os.path.isfile(os.path.join(prefix, "lib", "jarvis-capture", PLUGIN)),
              "the plugin is installed in lib/jarvis-capture/", "")
        check(not os.path.exists(os.path.join(prefix, "bin", PLUGIN)),
              "and not beside the binary", "")
        ok, clean, lines = serves(installed)
        check(ok and clean, "the installed binary serves /healthz and stops with 0", str(lines))

        log("-- a binary without its plugin")
        alone_dir = os.path.join(work, "alone")
        os.makedirs(alone_dir)
        alone = os.path.join(alone_dir, "jarvis-capture")
        shutil.copy(jc, alone)
        rc, lines = run_daemon_once(alone, ["--listen", "127.0.0.1:0"])
        check(rc == 1, "serve exits 1", f"rc {rc}")
        check(len(lines) == 1 and PLUGIN in lines[0] and
              os.path.join(alone_dir, PLUGIN) in lines[0] and "lib/jarvis-capture" in lines[0],
              "one line naming the plugin and where it was looked for", str(lines))
        sample = os.path.join(PCAP_DIR, "zeek_http_get.pcap")
        p = subprocess.run([alone, "capture", "-r", sample, "-q"], capture_output=True,
                           text=True)
        check(p.returncode == 0, "capture -r works without the plugin", p.stderr[-300:])

        env = dict(os.environ, JARVIS_HTTP_PLUGIN=plugin)
        ok, clean, lines = serves(alone, env=env)
        check(ok and clean, "JARVIS_HTTP_PLUGIN names the plugin: it serves", str(lines))

        other = next(p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1")
                     if os.path.exists(p))
        p = subprocess.run([alone, "serve", "--listen", "127.0.0.1:0"], capture_output=True,
                           text=True, env=dict(os.environ, JARVIS_HTTP_PLUGIN=other), timeout=10)
        check(p.returncode == 1 and "is not the HTTP server plugin" in p.stderr,
              "another shared object is refused", p.stderr.strip())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())

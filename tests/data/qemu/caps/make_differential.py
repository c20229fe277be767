#!/usr/bin/env python3
"""Differential ground truth: QEMU's accept/reject decisions for migration
capabilities, parameters and transports (mapped-ram and friends).

Python 3 standard library only.  Drives qemu-system-x86_64 over QMP (unix
socket).  Every record uses its own freshly started QEMU (killed afterwards),
so no state leaks between records.

For every subset of {mapped-ram, multifd, xbzrle, postcopy-ram} (16)
  x multifd-compression in {none, zlib}
  x direct-io in {false, true}
  x transport in {file, tcp-refused, tcp-listener, unix-refused,
                  unix-listener, exec, fd}
  x order in {together, forward, reverse, params-first}
it records the replies to migrate-set-capabilities, migrate-set-parameters
and migrate (+ the final query-migrate status).  Records with order
"together" and transport file / tcp-listener / unix-listener / exec / fd also
get an incoming-side run (-incoming defer + same caps/params +
migrate-incoming).  Finally a few load-time capability mismatch cases are run.

Usage: make_differential.py [--scratch DIR] [--out FILE] [--jobs N]
                            [--accel kvm|tcg] [--no-load]
                            [--sample N [--seed S]] [--tls]
Output: differential.json (deterministic: sorted, placeholders for temp
paths/ports, no timestamps).

--sample N runs only N of the 1792 records, picked by a seeded partial
Fisher-Yates shuffle (splitmix64, so the same N and S pick the same records
on every machine and Python version), and writes to stdout unless --out is
given: never over differential.json by default.  tests/qemu/caps_differential.rs
uses it to re-ask a live QEMU and compare with the recorded table.

--tls writes a second, smaller table, tls.json: TLS was out of scope of the
main one.  Every subset of {mapped-ram, multifd} x multifd-compression
none/zlib x tls-creds ""/"tls0" (a tls-creds-anon object) x caps then
parameters / parameters first x file / tcp-refused: 64 records with
the same fields as the main table's sources (plus tls_creds), no incoming
side.
"""

import argparse
import concurrent.futures
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
CAPS = ["mapped-ram", "multifd", "xbzrle", "postcopy-ram"]  # "forward" order
COMPRESSIONS = ["none", "zlib"]
DIRECT_IO = [False, True]
TRANSPORTS = ["file", "tcp-refused", "tcp-listener", "unix-refused",
              "unix-listener", "exec", "fd"]
ORDERS = ["together", "forward", "reverse", "params-first"]
# incoming side is run for these (with order "together"); tcp-listener /
# unix-listener stand for "tcp" / "unix" (QEMU itself listens there)
INCOMING_FOR = {"file": "file", "tcp-listener": "tcp", "unix-listener": "unix",
                "exec": "exec", "fd": "fd"}
MIGRATE_TIMEOUT = 5.0       # seconds to wait for a terminal state (source)
INCOMING_TIMEOUT = 10.0     # seconds to wait for a terminal state (dest, data available)
NOISE = re.compile(r"warning: host doesn't support requested feature")
TERMINAL = ("completed", "failed", "cancelled")


class QEMUDied(Exception):
    pass


class QMP:
    def __init__(self, path, proc, timeout=20):
        self.proc = proc
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if proc.poll() is not None or time.time() > deadline:
                    raise
                time.sleep(0.02)
        self.sock.settimeout(60)
        self.buf = b""
        self.greeting = self._read()
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout) as e:
                raise QEMUDied(str(e))
            if not chunk:
                raise QEMUDied("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def raw(self, name, args=None, fds=None):
        """Returns (ok, value_or_error_desc)."""
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        data = json.dumps(msg).encode() + b"\n"
        try:
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.sendall(data)
        except OSError as e:
            raise QEMUDied(str(e))
        while True:
            r = self._read()
            if "event" in r:
                continue
            if "error" in r:
                return False, r["error"].get("desc")
            return True, r.get("return")

    def cmd(self, name, args=None, fds=None):
        ok, v = self.raw(name, args, fds)
        if not ok:
            raise RuntimeError("QMP %s: %s" % (name, v))
        return v


class Guest:
    def __init__(self, d, tag, accel, incoming=False, extra=()):
        self.sock_path = os.path.join(d, tag + ".qmp")
        self.log_path = os.path.join(d, tag + ".log")
        args = [QEMU, "-M", "pc", "-m", "16", "-nodefaults", "-display", "none",
                "-S", "-accel", accel,
                "-qmp", "unix:%s,server=on,wait=off" % self.sock_path]
        if incoming:
            args += ["-incoming", "defer"]
        args += list(extra)
        self.args = args
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.qmp = QMP(self.sock_path, self.proc)
        except Exception:
            self.kill()
            raise

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        try:
            self.qmp.sock.close()
        except Exception:
            pass
        self.log.close()

    def exit_info(self, wait=2.0):
        """None if still running, else {'exit_code': n} / {'signal': name}."""
        try:
            rc = self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None
        if rc < 0:
            import signal
            return {"signal": signal.Signals(-rc).name}
        return {"exit_code": rc}

    def stderr_lines(self):
        with open(self.log_path, "rb") as f:
            text = f.read().decode(errors="replace")
        return [l for l in text.splitlines() if l.strip() and not NOISE.search(l)]


class Listener:
    """Accepts any number of connections and drains them (never writes)."""

    def __init__(self, family, addr):
        self.s = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(addr)
        self.s.listen(16)
        self.s.settimeout(0.2)
        self.stop = False
        self.conns = 0
        self.threads = []
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        while not self.stop:
            try:
                c, _ = self.s.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns += 1
            t = threading.Thread(target=self._drain, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def _drain(self, c):
        c.settimeout(0.5)
        try:
            while not self.stop:
                try:
                    if not c.recv(1 << 20):
                        break
                except socket.timeout:
                    continue
        except OSError:
            pass
        c.close()

    def close(self):
        self.stop = True
        self.s.close()
        self.t.join()
        for t in self.threads:
            t.join()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Subst:
    def __init__(self, d):
        self.pairs = [(d, "{TMP}")]

    def port(self, p, name="{PORT}"):
        self.pairs.append((re.compile(r"(?<!\d)%d(?!\d)" % p), name))

    def __call__(self, v):
        if isinstance(v, str):
            for a, b in self.pairs:
                v = a.sub(b, v) if hasattr(a, "sub") else v.replace(a, b)
            return v
        if isinstance(v, list):
            return [self(x) for x in v]
        if isinstance(v, dict):
            return {k: self(x) for k, x in v.items()}
        return v


def wait_terminal(g, timeout):
    """Poll query-migrate. Returns dict with status/error_desc/timed_out/qemu_exit."""
    deadline = time.time() + timeout
    out = {}
    try:
        while True:
            st = g.qmp.cmd("query-migrate")
            s = st.get("status")
            out = {"status": s}
            if "error-desc" in st:
                out["error_desc"] = st["error-desc"]
            if s in TERMINAL:
                return out
            if time.time() > deadline:
                out["timed_out"] = True
                return out
            time.sleep(0.03)
    except QEMUDied:
        out = {"status": None, "qemu_exit": g.exit_info(5)}
        return out


def caps_arg(caps, state=True):
    return {"capabilities": [{"capability": c, "state": state} for c in caps]}


def set_caps(q, caps, order):
    if order in ("together", "params-first"):
        ok, v = q.raw("migrate-set-capabilities", caps_arg(caps))
        return {"ok": ok, "error": None if ok else v}
    seq = [c for c in CAPS if c in caps]
    if order == "reverse":
        seq.reverse()
    steps = []
    for c in seq:
        ok, v = q.raw("migrate-set-capabilities", caps_arg([c]))
        steps.append({"cap": c, "ok": ok, "error": None if ok else v})
    errs = [s["error"] for s in steps if not s["ok"]]
    return {"ok": not errs, "error": errs[0] if errs else None, "steps": steps}


def set_params(q, comp, dio, tls=None):
    args = {"multifd-compression": comp, "direct-io": dio}
    if tls is not None:
        args["tls-creds"] = tls
    ok, v = q.raw("migrate-set-parameters", args)
    return {"ok": ok, "error": None if ok else v}


def enabled_caps(q):
    r = q.cmd("query-migrate-capabilities")
    on = {c["capability"] for c in r if c["state"]}
    return [c for c in CAPS if c in on] + sorted(on - set(CAPS))


def eff_params(q, tls=False):
    p = q.cmd("query-migrate-parameters")
    out = {"multifd-compression": p.get("multifd-compression"),
           "direct-io": p.get("direct-io")}
    if tls:
        out["tls-creds"] = p.get("tls-creds")
    return out


def run_source(d, accel, caps, order, comp, dio, transport, sub, tls=None):
    """tls: None (the main table: tls-creds never set) or the tls-creds
    value to set with the other parameters ("" or "tls0", an anonymous
    client credentials object the QEMU gets)."""
    rec = {"caps": caps, "order": order, "multifd_compression": comp,
           "direct_io": dio, "transport": transport}
    if tls is not None:
        rec["tls_creds"] = tls
    listener = None
    blocker = None
    fds = None
    fdobj = None
    if transport == "file":
        uri = "file:%s/out.mig" % d
    elif transport == "tcp-refused":
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))        # bound, not listening -> ECONNREFUSED
        port = blocker.getsockname()[1]
        sub.port(port)
        uri = "tcp:127.0.0.1:%d" % port
    elif transport == "tcp-listener":
        listener = Listener(socket.AF_INET, ("127.0.0.1", 0))
        port = listener.s.getsockname()[1]
        sub.port(port)
        uri = "tcp:127.0.0.1:%d" % port
    elif transport == "unix-refused":
        uri = "unix:%s/nobody.sock" % d
    elif transport == "unix-listener":
        listener = Listener(socket.AF_UNIX, "%s/drain.sock" % d)
        uri = "unix:%s/drain.sock" % d
    elif transport == "exec":
        uri = "exec:cat > %s/exec.out" % d
    elif transport == "fd":
        fdobj = os.open("%s/fd.out" % d, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        fds = [fdobj]
        uri = "fd:migfd"
    rec["uri"] = uri
    extra = () if tls is None else ("-object", "tls-creds-anon,id=tls0,endpoint=client")
    g = Guest(d, "src", accel, extra=extra)
    try:
        q = g.qmp
        if fds:
            q.cmd("getfd", {"fdname": "migfd"}, fds=fds)
        rec["set_parameters"] = None
        if order == "params-first":
            rec["set_parameters"] = set_params(q, comp, dio, tls)
        rec["set_capabilities"] = set_caps(q, caps, order)
        if order != "params-first":
            rec["set_parameters"] = set_params(q, comp, dio, tls)
        # QEMU quirk probe: the same call again (state is unchanged either way,
        # but the mapped-ram check now sees the values stored by the first call)
        rec["set_parameters_repeat"] = set_params(q, comp, dio, tls)
        rec["caps_enabled"] = enabled_caps(q)
        rec["params_effective"] = eff_params(q, tls is not None)
        ok, v = q.raw("migrate", {"uri": uri})
        m = {"ok": ok, "error": None if ok else v}
        if ok:
            m.update(wait_terminal(g, MIGRATE_TIMEOUT))
        else:
            st = q.cmd("query-migrate")
            m["status"] = st.get("status")
            if "error-desc" in st:
                m["error_desc"] = st["error-desc"]
        if listener is not None:
            time.sleep(0.5)   # let late channel connects reach accept()
            m["listener_connections"] = listener.conns
        rec["migrate"] = m
        if "qemu_exit" not in m:
            # the QEMU quirk: the mapped-ram/compression check looks at the
            # CURRENT values, so even resetting to the defaults can fail
            rec["reset_parameters_after"] = set_params(
                q, "none", False, None if tls is None else "")
    except QEMUDied as e:
        rec.setdefault("migrate", {})["qemu_died"] = str(e)
        rec["migrate"]["qemu_exit"] = g.exit_info(5)
    finally:
        g.kill()
        if listener:
            listener.close()
        if blocker:
            blocker.close()
        if fdobj is not None:
            os.close(fdobj)
    err = g.stderr_lines()
    rec["stderr"] = err
    return rec


def prepare_input(d, accel, path, ref_caps):
    """Input for a file/exec/fd destination: the source's output when it
    wrote one, else a file saved (file: URI, default parameters) with the
    capabilities that the source actually had enabled, else an empty file."""
    if os.path.exists(path) and os.path.getsize(path):
        return "source-output"
    if os.path.exists(path):
        os.unlink(path)
    try:
        save(d, accel, "ref", ref_caps, None, path)
        return "reference-save-with-caps:" + (",".join(ref_caps) or "none")
    except Exception:
        open(path, "wb").close()
        return "empty-file"


def run_incoming(d, accel, caps, comp, dio, kind, sub, ref_caps):
    inc = {"transport": kind}
    fds = None
    fdobj = None
    poll = False
    if kind == "file":
        src = "%s/out.mig" % d
        inc["input"] = prepare_input(d, accel, src, ref_caps)
        uri = "file:" + src
        poll = True
    elif kind == "exec":
        src = "%s/exec.out" % d
        inc["input"] = prepare_input(d, accel, src, ref_caps)
        uri = "exec:cat %s" % src
        poll = True
    elif kind == "fd":
        src = "%s/fd.out" % d
        inc["input"] = prepare_input(d, accel, src, ref_caps)
        fdobj = os.open(src, os.O_RDONLY)
        fds = [fdobj]
        uri = "fd:migfd"
        poll = True
    elif kind == "tcp":
        port = free_port()
        sub.port(port, "{PORT2}")
        uri = "tcp:127.0.0.1:%d" % port
    elif kind == "unix":
        uri = "unix:%s/in.sock" % d
    inc["uri"] = uri
    g = Guest(d, "dst", accel, incoming=True)
    try:
        q = g.qmp
        if fds:
            q.cmd("getfd", {"fdname": "migfd"}, fds=fds)
        inc["set_capabilities"] = set_caps(q, caps, "together")
        inc["set_parameters"] = set_params(q, comp, dio)
        inc["caps_enabled"] = enabled_caps(q)
        ok, v = q.raw("migrate-incoming", {"uri": uri})
        mi = {"ok": ok, "error": None if ok else v}
        if ok and poll:
            mi.update(wait_terminal(g, INCOMING_TIMEOUT))
        elif ok:
            mi["status"] = q.cmd("query-migrate").get("status")
        inc["migrate_incoming"] = mi
    except QEMUDied as e:
        inc.setdefault("migrate_incoming", {})["qemu_died"] = str(e)
    finally:
        ex = g.exit_info(0.3) if g.proc.poll() is not None else None
        if ex is None and inc.get("migrate_incoming", {}).get("status") is None \
                and inc.get("migrate_incoming", {}).get("ok"):
            ex = g.exit_info(3)   # load failure -> QEMU exits (exit-on-error)
        if ex is not None:
            inc["qemu_exit"] = ex
        g.kill()
        if fdobj is not None:
            os.close(fdobj)
    inc["stderr"] = g.stderr_lines()
    return inc


def job(args):
    scratch, accel, idx, caps, order, comp, dio, transport = args
    d = os.path.join(scratch, "j%04d" % idx)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    sub = Subst(d)
    rec = run_source(d, accel, caps, order, comp, dio, transport, sub)
    rec["incoming"] = None
    if order == "together" and transport in INCOMING_FOR:
        rec["incoming"] = run_incoming(d, accel, caps, comp, dio,
                                       INCOMING_FOR[transport], sub, rec["caps_enabled"])
    shutil.rmtree(d, ignore_errors=True)
    return sub(rec)


# ---------------------------------------------------------------------------
# --tls: TLS credentials with mapped-ram (a separate, smaller table)
# ---------------------------------------------------------------------------
TLS_CAPS = ["mapped-ram", "multifd"]
TLS_VALUES = ["", "tls0"]
TLS_ORDERS = ["together", "params-first"]
# exec: is left out: with tls-creds set and no mapped-ram, QEMU 10.0.2 starts
# a TLS handshake on the pipe and stops answering QMP.
TLS_TRANSPORTS = ["file", "tcp-refused"]


def tls_job(args):
    scratch, accel, idx, caps, order, comp, tls, transport = args
    d = os.path.join(scratch, "t%04d" % idx)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    sub = Subst(d)
    rec = run_source(d, accel, caps, order, comp, False, transport, sub, tls=tls)
    shutil.rmtree(d, ignore_errors=True)
    return sub(rec)


def tls_sort_key(r):
    return (len(r["caps"]), [TLS_CAPS.index(c) for c in r["caps"]],
            TLS_ORDERS.index(r["order"]), COMPRESSIONS.index(r["multifd_compression"]),
            TLS_VALUES.index(r["tls_creds"]), TLS_TRANSPORTS.index(r["transport"]))


def tls_main(a, scratch, version, t0):
    subsets = []
    for n in range(len(TLS_CAPS) + 1):
        subsets += [list(c) for c in itertools.combinations(TLS_CAPS, n)]
    jobs = []
    for caps, order, comp, tls, tr in itertools.product(
            subsets, TLS_ORDERS, COMPRESSIONS, TLS_VALUES, TLS_TRANSPORTS):
        jobs.append((scratch, a.accel, len(jobs), caps, order, comp, tls, tr))
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
        records = list(ex.map(tls_job, jobs))
    records.sort(key=tls_sort_key)
    doc = {
        "qemu_version": version,
        "generator": "make_differential.py --tls (Python stdlib, QMP); no migsim code",
        "qemu_args": "-M pc -m 16 -nodefaults -display none -S -accel %s -qmp unix:...,server=on,wait=off"
                     " -object tls-creds-anon,id=tls0,endpoint=client" % a.accel,
        "placeholders": {"{TMP}": "per-record scratch directory",
                         "{PORT}": "source-side TCP port (bound but not listening)"},
        "dimensions": {"caps": TLS_CAPS, "orders": TLS_ORDERS,
                       "multifd_compression": COMPRESSIONS, "tls_creds": TLS_VALUES,
                       "direct_io": [False], "transports": TLS_TRANSPORTS,
                       "migrate_timeout_seconds": MIGRATE_TIMEOUT},
        "record_count": len(records),
        "records": records,
    }
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "tls.json")
    with open(out, "w") as f:
        f.write(dump_doc(doc))
    print("tls records %d, %.1fs" % (len(records), time.time() - t0), file=sys.stderr)


# ---------------------------------------------------------------------------
# load-time mismatch cases
# ---------------------------------------------------------------------------
def save(d, accel, name, caps, params, path=None):
    path = path or os.path.join(d, name + ".mig")
    g = Guest(d, name + "-src", accel)
    try:
        if caps:
            g.qmp.cmd("migrate-set-capabilities", caps_arg(caps))
        if params:
            g.qmp.cmd("migrate-set-parameters", params)
        g.qmp.cmd("migrate", {"uri": "file:" + path})
        st = wait_terminal(g, 30)
        assert st["status"] == "completed", st
    finally:
        g.kill()
    return path


def load(d, accel, tag, path, caps, exit_on_error=True, params=None):
    g = Guest(d, tag, accel, incoming=True)
    r = {}
    try:
        q = g.qmp
        if caps:
            r["set_capabilities"] = set_caps(q, caps, "together")
        if params:
            ok, v = q.raw("migrate-set-parameters", params)
            r["set_parameters"] = {"ok": ok, "error": None if ok else v}
        args = {"uri": "file:" + path}
        if not exit_on_error:
            args["exit-on-error"] = False
        ok, v = q.raw("migrate-incoming", args)
        r["migrate_incoming"] = {"ok": ok, "error": None if ok else v}
        if ok:
            r["migrate_incoming"].update(wait_terminal(g, 30))
        if not exit_on_error and g.proc.poll() is None:
            r["runstate_after"] = q.cmd("query-status")["status"]
    except QEMUDied as e:
        r["qemu_died"] = str(e)
    finally:
        ended = r.get("qemu_died") or (r.get("migrate_incoming", {}).get("ok")
                                       and r["migrate_incoming"].get("status") is None)
        r["qemu_exit"] = g.exit_info(5 if ended else 0.2)  # None: still running, killed
        g.kill()
    r["stderr"] = g.stderr_lines()
    return r


def load_cases(scratch, accel):
    d = os.path.join(scratch, "load")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    sub = Subst(d)
    files = {
        "plain": save(d, accel, "plain", [], None),
        "mapped-ram": save(d, accel, "mapped", ["mapped-ram"], None),
        "mapped-ram+multifd": save(d, accel, "mapped-multifd", ["mapped-ram", "multifd"], None),
    }
    zlib = {"multifd-compression": "zlib"}
    cases = [
        ("mapped-ram", [], True, None),
        ("mapped-ram", [], False, None),
        ("plain", ["mapped-ram"], True, None),
        ("plain", ["mapped-ram"], False, None),
        ("mapped-ram+multifd", ["mapped-ram"], True, None),
        ("mapped-ram", ["mapped-ram", "multifd"], True, None),
        ("mapped-ram+multifd", ["mapped-ram", "multifd"], True, None),
        ("mapped-ram+multifd", [], True, None),
        ("plain", ["multifd"], True, None),
        ("plain", ["xbzrle"], True, None),
        ("mapped-ram", ["mapped-ram"], True, None),
        ("mapped-ram", ["mapped-ram"], True, zlib),
        ("mapped-ram+multifd", ["mapped-ram", "multifd"], True, zlib),
        ("mapped-ram+multifd", ["mapped-ram", "multifd"], False, zlib),
    ]
    out = []
    for i, (src, dcaps, eoe, params) in enumerate(cases):
        r = load(d, accel, "dst%d" % i, files[src], dcaps, eoe, params)
        out.append(sub({"file_written_with_caps": src, "destination_caps": dcaps,
                        "destination_params": params, "exit_on_error": eoe, **r}))
    shutil.rmtree(d, ignore_errors=True)
    return out


def dump_doc(doc):
    """Deterministic JSON: sorted keys, one record per line."""
    one = lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False)
    parts = []
    for k in sorted(doc):
        v = doc[k]
        if isinstance(v, list):
            body = ",\n".join("  " + one(x) for x in v)
            parts.append(" %s: [\n%s\n ]" % (one(k), body) if v else " %s: []" % one(k))
        else:
            parts.append(" %s: %s" % (one(k), one(v)))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def sort_key(r):
    return (len(r["caps"]), [CAPS.index(c) for c in r["caps"]], ORDERS.index(r["order"]),
            COMPRESSIONS.index(r["multifd_compression"]), r["direct_io"],
            TRANSPORTS.index(r["transport"]))


def splitmix64(seed):
    """The splitmix64 stream from `seed` (64-bit integers)."""
    mask = (1 << 64) - 1
    x = seed & mask
    while True:
        x = (x + 0x9E3779B97F4A7C15) & mask
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        yield z ^ (z >> 31)


def sample_indices(total, n, seed):
    """n distinct indices of range(total), sorted: the first n positions of
    a Fisher-Yates shuffle driven by splitmix64(seed)."""
    idx = list(range(total))
    rng = splitmix64(seed)
    for i in range(min(n, total)):
        j = i + next(rng) % (total - i)
        idx[i], idx[j] = idx[j], idx[i]
    return sorted(idx[:min(n, total)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scratch", default="/tmp/capsdiff")
    ap.add_argument("--out", default=None,
                    help="output file (default: differential.json next to this script; "
                         "stdout with --filter or --sample)")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--accel", default="kvm")
    ap.add_argument("--no-load", action="store_true")
    ap.add_argument("--filter", default=None,
                    help="python expression over caps/order/comp/dio/transport (debug)")
    ap.add_argument("--sample", type=int, default=None,
                    help="run only this many records, picked by --seed (see the module doc)")
    ap.add_argument("--seed", type=int, default=0, help="seed of --sample")
    ap.add_argument("--tls", action="store_true",
                    help="write the TLS table (tls.json) instead of differential.json")
    a = ap.parse_args()
    partial = a.filter is not None or a.sample is not None
    if a.out is None and not partial and not a.tls:
        a.out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "differential.json")
    scratch = os.path.abspath(a.scratch)
    os.makedirs(scratch, exist_ok=True)
    t0 = time.time()
    version = subprocess.run([QEMU, "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    if a.tls:
        tls_main(a, scratch, version, t0)
        return
    subsets = []
    for n in range(len(CAPS) + 1):
        subsets += [list(c) for c in itertools.combinations(CAPS, n)]
    jobs = []
    if True:
        for caps, order, comp, dio, tr in itertools.product(
                subsets, ORDERS, COMPRESSIONS, DIRECT_IO, TRANSPORTS):
            if a.filter and not eval(a.filter, {}, dict(caps=caps, order=order, comp=comp,
                                                        dio=dio, transport=tr)):
                continue
            jobs.append((scratch, a.accel, len(jobs), caps, order, comp, dio, tr))
    if a.sample is not None:
        jobs = [jobs[i] for i in sample_indices(len(jobs), a.sample, a.seed)]
    records = []
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
        for i, r in enumerate(ex.map(job, jobs)):
            records.append(r)
            if (i + 1) % 50 == 0:
                print("%d/%d  %.0fs" % (i + 1, len(jobs), time.time() - t0), file=sys.stderr, flush=True)
    records.sort(key=sort_key)
    loads = [] if a.no_load else load_cases(scratch, a.accel)
    doc = {
        "qemu_version": version,
        "generator": "make_differential.py (Python stdlib, QMP); no migsim code",
        "qemu_args": "-M pc -m 16 -nodefaults -display none -S -accel %s -qmp unix:...,server=on,wait=off"
                     " [-incoming defer]" % a.accel,
        "placeholders": {"{TMP}": "per-record scratch directory",
                         "{PORT}": "source-side TCP port (bound but not listening, or drain listener)",
                         "{PORT2}": "destination TCP port (QEMU listens)"},
        "dimensions": {"caps": CAPS, "orders": ORDERS, "multifd_compression": COMPRESSIONS,
                       "direct_io": DIRECT_IO, "transports": TRANSPORTS,
                       "incoming_for": INCOMING_FOR,
                       "migrate_timeout_seconds": MIGRATE_TIMEOUT},
        "record_count": len(records),
        "records": records,
        "load_mismatch": loads,
    }
    if a.sample is not None:
        doc["sample"] = {"n": a.sample, "seed": a.seed}
    if a.out is None:
        sys.stdout.write(dump_doc(doc))
    else:
        with open(a.out, "w") as f:
            f.write(dump_doc(doc))
    print("records %d, %.1fs" % (len(records), time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()

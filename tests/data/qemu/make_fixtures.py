#!/usr/bin/env python3
"""Regenerate the real-QEMU migration fixtures in this directory.

Python 3 standard library only.  Drives qemu-system-x86_64 over QMP (unix
socket), writes save files with `migrate file:...`, dumps guest memory with
`pmemsave`, loads every save back into a fresh QEMU and compares memory, then
parses the files with the small independent parsers below (no migsim code)
and writes manifest.json plus gzip -9 -n compressed fixtures.

Usage: make_fixtures.py [--scratch DIR] [--out DIR] [--accel kvm|tcg] [--only NAME,...]
Normally run through make-fixtures.sh.  --only regenerates just the named
saves (e.g. --only seq-novmdesc,mapped-novmdesc) and keeps the other
entries of an existing manifest.json and the other checked-in files.
"""

import argparse
import gzip
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

PAGE = 4096
QEMU = os.environ.get("QEMU", "qemu-system-x86_64")

# ---------------------------------------------------------------------------
# Known guest memory contents (loaded with -device loader,file=...,addr=...)
#
# Region A: 40 pages at guest-physical 0x100000 (1 MiB).
#   page k (0 <= k < 40): every byte = 0x40 + k, then the first 8 bytes are
#   overwritten with be64 k.  Pages k = 3 and k = 17 are entirely zero.
# Region B: 8 pages at guest-physical 0x900000 (9 MiB).
#   page j (0 <= j < 8): every byte = 0xC0 + j, then the first 8 bytes are
#   overwritten with be64 (0x1000 + j).
# ---------------------------------------------------------------------------
REGION_A_ADDR, REGION_A_PAGES, REGION_A_ZERO = 0x100000, 40, (3, 17)
REGION_B_ADDR, REGION_B_PAGES = 0x900000, 8

LEGACY_LO, LEGACY_HI = 0xA0000, 0x100000  # [lo, hi): not pc.ram in pmemsave


def pattern_a():
    out = bytearray()
    for k in range(REGION_A_PAGES):
        if k in REGION_A_ZERO:
            out += bytes(PAGE)
        else:
            page = bytearray([0x40 + k]) * PAGE
            page[0:8] = struct.pack(">Q", k)
            out += page
    return bytes(out)


def pattern_b():
    out = bytearray()
    for j in range(REGION_B_PAGES):
        page = bytearray([0xC0 + j]) * PAGE
        page[0:8] = struct.pack(">Q", 0x1000 + j)
        out += page
    return bytes(out)


# ---------------------------------------------------------------------------
# QMP
# ---------------------------------------------------------------------------
class QMP:
    def __init__(self, path, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.settimeout(120)
        self.buf = b""
        self.events = []
        self.greeting = self._read()
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise RuntimeError("QMP %s %s: %s" % (name, args, r["error"]))
            return r["return"]

    def hmp(self, line):
        return self.cmd("human-monitor-command", **{"command-line": line})

    def wait_migration(self, timeout=120):
        deadline = time.time() + timeout
        while True:
            st = self.cmd("query-migrate")
            s = st.get("status")
            if s == "completed":
                return st
            if s in ("failed", "cancelled"):
                raise RuntimeError("migration %s: %s" % (s, st))
            if time.time() > deadline:
                raise RuntimeError("migration timeout: %s" % st)
            time.sleep(0.05)

    def close(self):
        self.sock.close()


class Guest:
    """One QEMU process. Always terminated via quit/kill of its own pid."""

    def __init__(self, scratch, tag, machine, mem_mib, accel, loaders=(), incoming=False,
                 extra=()):
        self.sock_path = os.path.join(scratch, tag + ".qmp")
        if os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        self.log_path = os.path.join(scratch, tag + ".log")
        args = [QEMU, "-M", machine, "-m", str(mem_mib), "-nodefaults",
                "-display", "none", "-S", "-accel", accel,
                "-qmp", "unix:%s,server=on,wait=off" % self.sock_path]
        args += list(extra)
        for f, addr in loaders:
            args += ["-device", "loader,file=%s,addr=0x%x" % (f, addr)]
        if incoming:
            args += ["-incoming", "defer"]
        self.args = args
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.qmp = QMP(self.sock_path)
        except Exception:
            self.kill()
            raise

    def quit(self):
        try:
            self.qmp.cmd("quit")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


# ---------------------------------------------------------------------------
# Independent stream parsing (reference doc sections 2-4)
# ---------------------------------------------------------------------------
class Reader:
    def __init__(self, data, pos=0):
        self.d, self.p = data, pos

    def u8(self):
        v = self.d[self.p]
        self.p += 1
        return v

    def be16(self):
        v = struct.unpack_from(">H", self.d, self.p)[0]
        self.p += 2
        return v

    def be32(self):
        v = struct.unpack_from(">I", self.d, self.p)[0]
        self.p += 4
        return v

    def be64(self):
        v = struct.unpack_from(">Q", self.d, self.p)[0]
        self.p += 8
        return v

    def sstr(self):
        n = self.u8()
        s = self.d[self.p:self.p + n].decode()
        self.p += n
        return s

    def raw(self, n):
        v = self.d[self.p:self.p + n]
        self.p += n
        return v


FLAG_ZERO, FLAG_MEM_SIZE, FLAG_PAGE, FLAG_EOS, FLAG_CONTINUE = 0x02, 0x04, 0x08, 0x10, 0x20
FLAG_MULTIFD_FLUSH = 0x200


def parse_stream(data):
    """Walk header, configuration, the RAM START/PART/END sections and any
    COMMANDs, stopping at the first FULL section.  Returns a dict of facts.
    For sequential files, also reconstructs RAM block contents (dict name ->
    bytearray) from PAGE/ZERO records; for mapped-ram files from the bitmap
    and page area."""
    r = Reader(data)
    info = {}
    magic, ver = r.be32(), r.be32()
    assert magic == 0x5145564D, hex(magic)
    info["header_version"] = ver
    t = r.u8()
    assert t == 0x07, "expected CONFIGURATION, got 0x%x" % t
    n = r.be32()
    info["machine_type"] = r.raw(n).decode()
    caps = []
    subsections = []
    while data[r.p] == 0x05:
        r.u8()
        name = r.sstr()
        sver = r.be32()
        subsections.append(name)
        if name == "configuration/capabilities":
            cnt = r.be32()
            caps = [r.sstr() for _ in range(cnt)]
        elif name == "configuration/target-page-bits":
            r.be32()
        elif name == "configuration/uuid":
            r.raw(16)
        else:
            raise ValueError("unknown configuration subsection " + name)
    info["config_subsections"] = subsections
    info["config_capabilities"] = caps
    mapped = "mapped-ram" in caps

    blocks = []
    contents = {}
    ram_sections = []
    commands = []
    sections = {}  # id -> idstr
    seq_counts = {}
    last_block = None

    def ram_records(kind):
        nonlocal last_block
        while True:
            w = r.be64()
            flags, off = w & (PAGE - 1), w & ~(PAGE - 1)
            if flags & FLAG_EOS:
                assert w == FLAG_EOS
                return
            if w == FLAG_MULTIFD_FLUSH:
                continue
            if flags & FLAG_MEM_SIZE:
                raise ValueError("MEM_SIZE outside START")
            assert not mapped, "RAM record in mapped-ram stream"
            if flags & FLAG_CONTINUE:
                name = last_block
            else:
                name = r.sstr()
                last_block = name
            c = seq_counts.setdefault(name, {"PAGE": 0, "ZERO": 0, "pages": []})
            if flags & FLAG_ZERO:
                fill = r.u8()
                assert fill == 0
                c["ZERO"] += 1
                contents[name][off:off + PAGE] = bytes(PAGE)
            elif flags & FLAG_PAGE:
                c["PAGE"] += 1
                c["pages"].append(off // PAGE)
                contents[name][off:off + PAGE] = r.raw(PAGE)
            else:
                raise ValueError("unexpected RAM flags 0x%x at 0x%x" % (flags, r.p - 8))

    while True:
        start = r.p
        t = r.u8()
        if t == 0x01:  # START
            sid = r.be32()
            idstr = r.sstr()
            inst = r.be32()
            sver = r.be32()
            sections[sid] = idstr
            assert idstr == "ram" and inst == 0 and sver == 4, (idstr, inst, sver)
            info["ram_section_id"] = sid
            info["ram_start_offset"] = start
            w = r.be64()
            assert w & FLAG_MEM_SIZE
            total = w & ~(PAGE - 1)
            info["ram_total_bytes"] = total
            got = 0
            while got < total:
                rec = r.p
                name = r.sstr()
                used = r.be64()
                got += used
                b = {"name": name, "used_length": used, "record_offset": rec}
                if mapped:
                    hdr = r.p
                    hver, psize, bmo, pgo = struct.unpack_from(">IQQQ", data, hdr)
                    r.p += 28
                    npages = used // psize
                    bsize = (npages + 63) // 64 * 8
                    bitmap = data[bmo:bmo + bsize]
                    setbits = [i for i in range(npages) if bitmap[i // 8] >> (i % 8) & 1]
                    buf = bytearray(used)
                    for i in setbits:
                        buf[i * PAGE:(i + 1) * PAGE] = data[pgo + i * PAGE:pgo + (i + 1) * PAGE]
                    contents[name] = buf
                    # pages whose bit is clear but whose slot is non-zero (stale)
                    stale = sum(1 for i in range(npages)
                                if not (bitmap[i // 8] >> (i % 8) & 1)
                                and any(data[pgo + i * PAGE:pgo + (i + 1) * PAGE]))
                    b.update({
                        "header_offset": hdr,
                        "header_version": hver,
                        "header_page_size": psize,
                        "bitmap_offset": bmo,
                        "bitmap_size": bsize,
                        "pages_offset": pgo,
                        "bitmap_set_bits": len(setbits),
                        "bitmap_set_pages": compress_ranges(setbits),
                        "clear_bit_nonzero_slots": stale,
                        "next_record_offset": pgo + used,
                    })
                    r.p = pgo + used
                else:
                    contents[name] = bytearray(used)
                blocks.append(b)
            assert got == total
            ram_records("START")
            ram_sections.append({"type": "START", "offset": start})
        elif t in (0x02, 0x03):  # PART / END
            sid = r.be32()
            assert sections.get(sid) == "ram", sid
            body = r.p
            ram_records("PART" if t == 2 else "END")
            ram_sections.append({"type": "PART" if t == 2 else "END", "offset": start,
                                 "body_bytes": r.p - body})
        elif t == 0x08:
            cmd, ln = r.be16(), r.be16()
            r.raw(ln)
            commands.append({"offset": start, "cmd": cmd, "len": ln})
            continue
        elif t == 0x04:
            info["first_full_section_offset"] = start
            break
        else:
            raise ValueError("unexpected section type 0x%x at 0x%x" % (t, start))
        foot = r.u8()
        assert foot == 0x7E, "footer 0x%x at 0x%x" % (foot, r.p - 1)
        assert r.be32() == sid
    info["ram_sections"] = ram_sections
    info["commands"] = commands
    info["blocks"] = blocks
    if not mapped:
        for b in blocks:
            c = seq_counts.get(b["name"], {"PAGE": 0, "ZERO": 0, "pages": []})
            b["page_records"] = c["PAGE"]
            b["zero_records"] = c["ZERO"]
            b["page_record_pages"] = compress_ranges(sorted(set(c["pages"])))
        info["page_records_total"] = sum(c["PAGE"] for c in seq_counts.values())
        info["zero_records_total"] = sum(c["ZERO"] for c in seq_counts.values())
    # EOF + vmdesc trailer: 00 06 be32 len json, json runs to end of file
    info.update(find_vmdesc(data))
    if info["eof_offset"] is None:
        # -machine suppress-vmdesc=on: no trailer, so the device sections
        # cannot be located; only the first one's header and the tail.
        info.update(no_vmdesc_facts(data, info["first_full_section_offset"]))
    else:
        devs = info.pop("_devices")
        info["full_sections"] = find_full_sections(
            data, info["first_full_section_offset"], info["eof_offset"], devs)
    info["sha256_before_first_full_section"] = sha256(data[:info["first_full_section_offset"]])
    return info, contents


def find_vmdesc(data):
    size = len(data)
    # The JSON is at most a few hundred KiB; search backwards for 00 06 len.
    lo = max(0, size - 4 * 1024 * 1024)
    p = data.rfind(b"\x00\x06", lo)
    while p >= lo and p != -1:
        if p + 6 <= size:
            ln = struct.unpack_from(">I", data, p + 2)[0]
            if p + 6 + ln == size and data[p + 6:p + 7] == b"{":
                desc = json.loads(data[p + 6:])
                return {"eof_offset": p, "vmdesc_offset": p + 1, "vmdesc_json_len": ln,
                        "vmdesc_page_size": desc.get("page_size"),
                        "_devices": desc["devices"]}
        p = data.rfind(b"\x00\x06", lo, p)
    return {"eof_offset": None}


def no_vmdesc_facts(data, first):
    """A save without vmdesc trailer: the header of the first FULL section
    (type 04, be32 id, short idstr, be32 instance, be32 version; its payload
    has no length), and the last 6 bytes, which QEMU writes as the last
    section's footer (7E, be32 id) and the EOF byte 00."""
    r = Reader(data, first)
    assert r.u8() == 0x04
    sid = r.be32()
    idstr = r.sstr()
    inst, ver = r.be32(), r.be32()
    tail = data[-6:]
    assert tail[0] == 0x7E and tail[5] == 0x00, tail.hex()
    return {
        "first_full_section": {"offset": first, "section_id": sid, "idstr": idstr,
                               "instance_id": inst, "version_id": ver,
                               "payload_offset": r.p},
        "vmdesc_offset": None,
        "tail_hex": tail.hex(),
        "last_footer_section_id": struct.unpack_from(">I", tail, 1)[0],
        # the EOF byte is the last byte of the file (QEMU writes nothing after it)
        "eof_offset": len(data) - 1,
        "eof_offset_from": "last byte of the file (tail checked: 7E id 00)",
        "full_sections": None,
    }


def compress_ranges(idx):
    """[1,2,3,7] -> [[1,3],[7,7]] (inclusive page index ranges)"""
    out = []
    for i in idx:
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def nonzero_pages(buf, ranges):
    cnt = 0
    for lo, hi in ranges:
        for off in range(lo, hi, PAGE):
            if any(buf[off:off + PAGE]):
                cnt += 1
    return cnt


def compact_json(v, ind=0, width=200):
    """Indented JSON, but any value that fits on one line stays on one line."""
    one = json.dumps(v)
    if len(one) + ind <= width or not isinstance(v, (dict, list)) or not v:
        return one
    pad = " " * (ind + 2)
    if isinstance(v, dict):
        items = ["%s%s: %s" % (pad, json.dumps(k), compact_json(x, ind + 2, width)) for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * ind + "}"
    items = [pad + compact_json(x, ind + 2, width) for x in v]
    return "[\n" + ",\n".join(items) + "\n" + " " * ind + "]"


def write_gz(path, data):
    # like gzip -9 -n: no file name, mtime 0 -> same bytes for same input
    with open(path, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=f, mtime=0) as z:
            z.write(data)


def parse_info_ramblock(text):
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and f[0] != "Block":
            rows.append({"name": f[0], "psize": f[1] + " " + f[2], "ram_addr_offset": int(f[3], 16),
                         "used_length": int(f[4], 16), "max_length": int(f[5], 16)})
    return rows


def find_full_sections(data, start, eof, devices):
    """Locate the FULL device sections using the vmdesc device list (same
    order as in the stream).  Each hit is checked: type byte 0x04, the first
    one at `start`, and every section is followed by its footer (7E + its
    section id) immediately before the next section / the EOF byte."""
    out = []
    pos = start
    for dev in devices:
        n = dev["name"].encode()
        k = data.find(bytes([len(n)]) + n + struct.pack(">I", dev["instance_id"]), pos)
        s = k - 5
        assert k > 0 and data[s] == 0x04, dev
        sid = struct.unpack_from(">I", data, s + 1)[0]
        ver = struct.unpack_from(">I", data, k + 1 + len(n) + 4)[0]
        out.append({"offset": s, "section_id": sid, "idstr": dev["name"],
                    "instance_id": dev["instance_id"], "version_id": ver})
        pos = k + 1 + len(n) + 8
    assert out[0]["offset"] == start
    ends = [o["offset"] for o in out[1:]] + [eof]
    for o, e in zip(out, ends):
        assert data[e - 5] == 0x7E and struct.unpack_from(">I", data, e - 4)[0] == o["section_id"], o
        o["end"] = e
    return out


def parse_flatview(text):
    """Entries of the FlatView that serves AS "memory" in `info mtree -f`.
    end is exclusive; region_offset is the offset inside the region."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("FlatView"):
            inside = False
        elif line.strip() == 'AS "memory", root: system':
            inside = True
        elif inside:
            m = re.match(r"\s+([0-9a-f]+)-([0-9a-f]+) \(prio (-?\d+), ([^)]+)\): (\S+)(?: @([0-9a-f]+))?", line)
            if m:
                lo, hi = int(m.group(1), 16), int(m.group(2), 16) + 1
                out.append({"start": lo, "end": hi, "kind": m.group(4), "region": m.group(5),
                            "region_offset": int(m.group(6), 16) if m.group(6) else 0})
    return out


def sha256(b):
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scratch", default="/tmp/qemufix")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--accel", default=None)
    ap.add_argument("--only", default=None,
                    help="comma-separated save names to regenerate (others kept)")
    a = ap.parse_args()
    scratch, out = a.scratch, a.out
    os.makedirs(scratch, exist_ok=True)
    os.makedirs(out, exist_ok=True)

    accel = a.accel
    if accel is None:
        accel = "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"

    version_text = subprocess.run([QEMU, "--version"], capture_output=True,
                                  text=True, check=True).stdout.splitlines()[0]

    pa, pb = pattern_a(), pattern_b()
    # QEMU reads the patterns from scratch; gzip copies are checked in
    sa, sb = os.path.join(scratch, "pattern-a.bin"), os.path.join(scratch, "pattern-b.bin")
    for p, d in ((sa, pa), (sb, pb)):
        with open(p, "wb") as f:
            f.write(d)
        write_gz(os.path.join(out, os.path.basename(p) + ".gz"), d)
    loaders = [(sa, REGION_A_ADDR), (sb, REGION_B_ADDR)]

    no_vmdesc = ["-machine", "suppress-vmdesc=on"]
    configs = [
        # name, machine, MiB, capabilities, parameters, extra QEMU args
        # (given to the source and the destination)
        ("seq", "pc", 16, {}, {}, []),
        ("mapped", "pc", 16, {"mapped-ram": True}, {}, []),
        ("mapped-multifd", "pc", 16, {"mapped-ram": True, "multifd": True},
         {"multifd-channels": 2}, []),
        ("q35-mapped", "q35", 32, {"mapped-ram": True}, {}, []),
        # no vmdesc JSON trailer after EOF (issue 14, point 5)
        ("seq-novmdesc", "pc", 16, {}, {}, no_vmdesc),
        ("mapped-novmdesc", "pc", 16, {"mapped-ram": True}, {}, no_vmdesc),
    ]
    if a.only:
        want = a.only.split(",")
        unknown = set(want) - {c[0] for c in configs}
        assert not unknown, "unknown save names: %s" % sorted(unknown)
        configs = [c for c in configs if c[0] in want]

    manifest = {
        "generator": "make-fixtures.sh / make_fixtures.py (Python stdlib, QMP); "
                     "no migsim code involved",
        "qemu_version": version_text,
        "accel": accel,
        "qemu_args_common": "-nodefaults -display none -S -accel %s" % accel,
        "page_size": PAGE,
        "pattern": {
            "pattern-a.bin": {
                "guest_physical_address": REGION_A_ADDR, "pages": REGION_A_PAGES,
                "zero_pages": list(REGION_A_ZERO),
                "page_k": "all bytes 0x40+k, first 8 bytes be64 k; pages 3 and 17 all zero",
                "sha256": sha256(pa)},
            "pattern-b.bin": {
                "guest_physical_address": REGION_B_ADDR, "pages": REGION_B_PAGES,
                "zero_pages": [],
                "page_j": "all bytes 0xC0+j, first 8 bytes be64 (0x1000+j)",
                "sha256": sha256(pb)},
            "loaded_with": "-device loader,file=pattern-a.bin,addr=0x100000 "
                           "-device loader,file=pattern-b.bin,addr=0x900000",
        },
        "legacy_window": [LEGACY_LO, LEGACY_HI],
        "files": {},
    }
    machine_pmem = {}  # machine key -> (pmemsave name, data) for sharing dumps
    mpath = os.path.join(out, "manifest.json")
    if a.only and os.path.exists(mpath):
        # keep the other saves' entries, and share their pmemsave dumps
        with open(mpath) as f:
            old = json.load(f)
        manifest["files"] = old["files"]
        for e in old["files"].values():
            key = (e["machine_option"], e["ram_mib"])
            pf = os.path.join(out, e["pmemsave_file"])
            if key not in machine_pmem and os.path.exists(pf):
                with gzip.open(pf) as f:
                    machine_pmem[key] = (e["pmemsave_file"][:-3], f.read())

    for name, machine, mib, caps, params, extra in configs:
        t0 = time.time()
        ram = mib << 20
        mig = os.path.join(scratch, name + ".mig")
        if os.path.exists(mig):
            os.unlink(mig)
        src_pmem = os.path.join(scratch, name + ".src.pmemsave")
        src_pmem_after = os.path.join(scratch, name + ".src-after.pmemsave")
        dst_pmem = os.path.join(scratch, name + ".dst.pmemsave")
        print("== %s: -M %s -m %d caps=%s params=%s" % (name, machine, mib, caps, params),
              flush=True)

        # ---- source
        g = Guest(scratch, name + "-src", machine, mib, accel, loaders, extra=extra)
        try:
            q = g.qmp
            status = q.cmd("query-status")
            machines = q.cmd("query-machines")
            cur = [m for m in machines if m.get("name") == machine or m.get("alias") == machine]
            resolved = cur[0]["name"] if cur else None
            q.cmd("pmemsave", val=0, size=ram, filename=src_pmem)
            ramblock_text = q.hmp("info ramblock")
            mtree_text = q.hmp("info mtree -f")
            if caps:
                q.cmd("migrate-set-capabilities",
                      capabilities=[{"capability": c, "state": v} for c, v in caps.items()])
            if params:
                q.cmd("migrate-set-parameters", **params)
            q.cmd("migrate", uri="file:" + mig)
            st = q.wait_migration()
            q.cmd("pmemsave", val=0, size=ram, filename=src_pmem_after)
            src_status_after = q.cmd("query-status")
        finally:
            g.quit()
        src_log = g.stderr_text()

        with open(src_pmem, "rb") as f:
            pm = f.read()
        with open(src_pmem_after, "rb") as f:
            pm_after = f.read()
        assert len(pm) == ram
        pmem_stable = pm == pm_after

        # ---- destination: no loader devices, memory must come from the file
        d = Guest(scratch, name + "-dst", machine, mib, accel, (), incoming=True, extra=extra)
        load = {}
        try:
            q = d.qmp
            if caps:
                q.cmd("migrate-set-capabilities",
                      capabilities=[{"capability": c, "state": v} for c, v in caps.items()])
            if params:
                q.cmd("migrate-set-parameters", **params)
            q.cmd("migrate-incoming", uri="file:" + mig)
            dst_st = q.wait_migration()
            load["status"] = dst_st["status"]
            load["runstate_after"] = q.cmd("query-status")["status"]
            q.cmd("pmemsave", val=0, size=ram, filename=dst_pmem)
        finally:
            d.quit()
        dst_log = d.stderr_text()
        with open(dst_pmem, "rb") as f:
            dm = f.read()
        load["dst_pmemsave_equals_src"] = dm == pm
        if dm != pm:
            load["differing_pages"] = compress_ranges(
                [i for i in range(ram // PAGE) if dm[i * PAGE:(i + 1) * PAGE] != pm[i * PAGE:(i + 1) * PAGE]])
        load["destination_args"] = " ".join(d.args[1:]).replace(scratch + "/", "")
        load["destination_caps"] = caps
        load["destination_params"] = params

        # ---- parse the file independently
        with open(mig, "rb") as f:
            data = f.read()
        sinfo, contents = parse_stream(data)
        pcram = contents.get("pc.ram")
        assert pcram is not None and len(pcram) == ram
        # What pmemsave sees at each guest-physical address: HMP "info mtree -f"
        fv = [e for e in parse_flatview(mtree_text) if e["start"] < ram]
        expect_equal = [[e["start"], min(e["end"], ram)] for e in fv
                        if e["region"] == "pc.ram" and e["region_offset"] == e["start"]]
        covered = sum(hi - lo for lo, hi in expect_equal)
        other = [e for e in fv if not (e["region"] == "pc.ram" and e["region_offset"] == e["start"])]
        cmp = {
            "pc_ram_from_file_equals_pmemsave_in_pc_ram_ranges": all(
                pcram[lo:hi] == pm[lo:hi] for lo, hi in expect_equal),
            "pc_ram_bytes_not_visible_in_pmemsave": ram - covered,
            "pc_ram_from_file_nonzero_pages_in_legacy_window": nonzero_pages(
                pcram, [(LEGACY_LO, LEGACY_HI)]),
            "pmemsave_nonzero_pages_in_legacy_window": nonzero_pages(
                pm, [(LEGACY_LO, LEGACY_HI)]),
            "pmemsave_legacy_window_equals_pc_ram": pm[LEGACY_LO:LEGACY_HI] == pcram[LEGACY_LO:LEGACY_HI],
        }
        # for the other ranges: does pmemsave equal the named RAM block's bytes?
        for e in other:
            blk = contents.get(e["region"])
            lo, hi = e["start"], min(e["end"], ram)
            if blk is not None:
                e["pmemsave_equals_block_bytes"] = (
                    pm[lo:hi] == bytes(blk[e["region_offset"]:e["region_offset"] + hi - lo]))
            e["pmemsave_nonzero_pages"] = nonzero_pages(pm, [(lo, hi)])
        cmp["pmemsave_ranges_not_pc_ram"] = other
        # stripped-down check: pattern present in pmemsave
        cmp["pmemsave_pattern_a_matches"] = pm[REGION_A_ADDR:REGION_A_ADDR + len(pa)] == pa
        cmp["pmemsave_pattern_b_matches"] = pm[REGION_B_ADDR:REGION_B_ADDR + len(pb)] == pb

        # ---- write outputs
        pm_name = "%s-%dm.pmemsave" % (machine, mib)
        key = (machine, mib)
        if key in machine_pmem:
            pm_name_existing, pm_data = machine_pmem[key]
            shared = pm_data == pm
            if not shared:
                pm_name = "%s.pmemsave" % name
        else:
            shared = False
        if not shared:
            machine_pmem[key] = (pm_name, pm)
            write_gz(os.path.join(out, pm_name + ".gz"), pm)
        write_gz(os.path.join(out, name + ".mig.gz"), data)
        with open(os.path.join(out, name + ".info-ramblock.txt"), "w") as f:
            f.write(ramblock_text)
        # One mtree file per machine; a save whose source printed another
        # text (e.g. FlatViews numbered in another order) gets its own.
        mtree_name = "%s-%dm.info-mtree.txt" % (machine, mib)
        mtree_path = os.path.join(out, mtree_name)
        if a.only and os.path.exists(mtree_path):
            with open(mtree_path) as f:
                if f.read() != mtree_text:
                    mtree_name = name + ".info-mtree.txt"
        with open(os.path.join(out, mtree_name), "w") as f:
            f.write(mtree_text)

        st_alloc = os.stat(mig).st_blocks * 512
        entry = {
            "file": name + ".mig.gz",
            "qemu_version": version_text,
            "qemu_args": " ".join(g.args[1:]).replace(scratch + "/", ""),
            "machine_option": machine,
            "machine_type_query_machines": resolved,
            "machine_type_in_header": sinfo["machine_type"],
            "ram_mib": mib,
            "extra_qemu_args": extra,
            "vmdesc_suppressed": "suppress-vmdesc=on" in extra,
            "capabilities_set": sorted(caps),
            "parameters_set": params,
            "file_size": len(data),
            "file_allocated_bytes_on_scratch_fs": st_alloc,
            "sha256_uncompressed": sha256(data),
            "source_migration_status": st.get("status"),
            "source_runstate_before": status["status"],
            "source_runstate_after": src_status_after["status"],
            "pmemsave_file": pm_name + ".gz",
            "pmemsave_size": ram,
            "pmemsave_stable_before_after_save": pmem_stable,
            "pmemsave_equals_pc_ram_ranges": expect_equal,
            "pmemsave_nonzero_pages_outside_legacy_window": nonzero_pages(
                pm, [(0, LEGACY_LO), (LEGACY_HI, ram)]),
            "pmemsave_nonzero_pages_in_pc_ram_ranges": nonzero_pages(pm, expect_equal),
            "info_mtree_file": mtree_name,
            "info_ramblock_file": name + ".info-ramblock.txt",
            "info_ramblock": parse_info_ramblock(ramblock_text),
            "stream": sinfo,
            "checks": cmp,
            "load_back": load,
            "qemu_stderr_source": src_log.strip().splitlines(),
            "qemu_stderr_destination": dst_log.strip().splitlines(),
            "seconds": round(time.time() - t0, 2),
        }
        manifest["files"][name + ".mig.gz"] = entry
        print("   size %d, blocks %s, load %s, dst==src %s" % (
            len(data), [(b["name"], b["used_length"]) for b in sinfo["blocks"]],
            load["status"], load["dst_pmemsave_equals_src"]), flush=True)

    # A save without vmdesc against the same guest's save with it: the RAM
    # part (everything before the first FULL section) is the same bytes.
    for fname, e in manifest["files"].items():
        if not e.get("vmdesc_suppressed"):
            continue
        twin = fname.replace("-novmdesc", "")
        t = manifest["files"].get(twin)
        if t is None:
            continue
        st, tt = e["stream"], t["stream"]
        e["compared_with_vmdesc_save"] = {
            "file": twin,
            "sha256_before_first_full_section_equal":
                st["sha256_before_first_full_section"] == tt["sha256_before_first_full_section"],
            "first_full_section_equal": st["first_full_section"] == dict(
                {k: tt["full_sections"][0][k] for k in
                 ("offset", "section_id", "idstr", "instance_id", "version_id")},
                payload_offset=st["first_full_section"]["payload_offset"]),
            "file_size_difference": t["file_size"] - e["file_size"],
            "eof_offset_equal": st["eof_offset"] == tt["eof_offset"],
        }

    with open(os.path.join(out, "manifest.json"), "w") as f:
        f.write(compact_json(manifest) + "\n")


if __name__ == "__main__":
    main()

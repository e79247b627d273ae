#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Keep only some of a shared object's CUDA code, in place.

usage: fatbin_keep.py LIB.so KIND:SM [KIND:SM ...]     (KIND ptx or elf; e.g. ptx:90)

A CUDA library's .nv_fatbin section holds one fat binary per translation
unit, each a list of entries: machine code (ELF) for some GPUs, PTX for
others. llama.cpp's prebuilt libggml-cuda.so (159 MB) holds sm_86, 89, 120
and 121 code and compute_75, 80 and 90 PTX; an H200 (sm_90) can run only the
compute_90 PTX (compiled by the driver at load time). This rewrites each fat
binary to hold only the entries named, moved to its front, its size field
shrunk to them and the rest of its bytes zeroed, so the file keeps its layout
(every registration still points at its fat binary's start) and compresses
to a fraction. Layout as the CUDA runtime writes it: a 16-byte header (magic
0xBA55ED50, version, header size, entries' size), then entries, each with its
own header (kind 1 PTX / 2 ELF, header size, payload size, SM at byte 28).
Prints what it kept; exit 1 if a fat binary would be left with nothing.
"""
import struct
import subprocess
import sys

MAGIC = 0xBA55ED50


def section(path, name):
    out = subprocess.check_output(['readelf', '-S', '-W', path], text=True)
    for line in out.splitlines():
        if ']' in line and line.split(']')[1].split()[:1] == [name]:
            f = line.split(']')[1].split()
            return int(f[3], 16), int(f[4], 16)
    sys.exit('%s: no %s section' % (path, name))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path = sys.argv[1]
    keep = set()
    for a in sys.argv[2:]:
        kind, sm = a.split(':')
        keep.add(({'ptx': 1, 'elf': 2}[kind], int(sm)))
    off, size = section(path, '.nv_fatbin')
    with open(path, 'r+b') as fh:
        fh.seek(off)
        sec = bytearray(fh.read(size))
        p = kept = dropped = 0
        while p + 16 <= size:
            magic, ver, hs, fsz = struct.unpack_from('<IHHQ', sec, p)
            if magic != MAGIC:
                p += 8
                continue
            q, end, out = p + hs, p + hs + fsz, bytearray()
            while q < end:
                kind, _, ehs, psz = struct.unpack_from('<HHIQ', sec, q)
                sm = struct.unpack_from('<I', sec, q + 28)[0]
                if (kind, sm) in keep:
                    out += sec[q:q + ehs + psz]
                    kept += 1
                else:
                    dropped += 1
                q += ehs + psz
            if not out:
                sys.exit('%s: a fat binary at 0x%x has none of %s' % (path, off + p, ' '.join(sys.argv[2:])))
            struct.pack_into('<Q', sec, p + 8, len(out))
            sec[p + hs:end] = out + bytes(end - p - hs - len(out))
            p = end
        fh.seek(off)
        fh.write(sec)
    print('%s: kept %d entries (%s), dropped %d' % (path, kept, ' '.join(sys.argv[2:]), dropped))


main()

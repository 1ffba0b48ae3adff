#!/usr/bin/env python3
"""Checks a sharded / distributed effdense run against an unsharded run of the same inputs.

    compare_runs.py REF.jsonl REF_OUT_DIR OUT_DIR PART.jsonl [PART.jsonl ...]

Passes (exit 0) when:
- every line of every part is whole JSON and none is an error line;
- no picture has two lines across the parts (a retried or resumed shard added no duplicate);
- the parts hold exactly the reference's pictures, each line equal to the reference's;
- OUT_DIR holds exactly REF_OUT_DIR's files, byte for byte, every PNG whole (chunks, CRCs,
  IEND), and no temporary file (`.NAME.effdense-partial-…`) is left behind.
Standard library only.
"""
import hashlib
import json
import os
import struct
import sys
import zlib


def read_lines(path):
    records = {}
    duplicates = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                sys.exit("compare: %s line %d is not whole JSON (%s)" % (path, number, error))
            if "error" in record:
                sys.exit("compare: %s line %d is an error line: %s" % (path, number, record["error"]))
            if record["image"] in records:
                duplicates.append(record["image"])
            records[record["image"]] = record
    return records, duplicates


def png_is_whole(path):
    with open(path, "rb") as file:
        data = file.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    offset = 8
    while offset + 12 <= len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        body_end = offset + 8 + length
        if body_end + 4 > len(data):
            return False
        (crc,) = struct.unpack(">I", data[body_end:body_end + 4])
        if zlib.crc32(data[offset + 4:body_end]) != crc:
            return False
        offset = body_end + 4
        if kind == b"IEND":
            return offset == len(data)
    return False


def tree(root):
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            files[os.path.relpath(path, root)] = path
    return files


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    reference_path, reference_out, out, parts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    reference, reference_duplicates = read_lines(reference_path)
    if reference_duplicates:
        sys.exit("compare: the reference run has duplicate lines: %s" % reference_duplicates[:3])
    merged = {}
    duplicates = []
    for part in parts:
        records, inner = read_lines(part)
        duplicates += inner + [image for image in records if image in merged]
        merged.update(records)
    if duplicates:
        sys.exit("compare: %d pictures have more than one line, e.g. %s" % (len(duplicates), duplicates[:3]))
    missing = sorted(set(reference) - set(merged))
    extra = sorted(set(merged) - set(reference))
    if missing or extra:
        sys.exit("compare: %d pictures missing (%s), %d not in the reference (%s)" % (len(missing), missing[:3], len(extra), extra[:3]))
    different = [image for image in reference if reference[image] != merged[image]]
    if different:
        sys.exit("compare: %d lines differ from the reference, e.g. %s" % (len(different), different[:3]))

    reference_files, files = tree(reference_out), tree(out)
    # The parts may live in OUT (the README's Slurm job writes OUT/part-<task>.jsonl).
    parts_here = {os.path.realpath(part) for part in parts}
    files = {name: path for name, path in files.items() if os.path.realpath(path) not in parts_here}
    partial = [name for name in files if "effdense-partial" in name]
    if partial:
        sys.exit("compare: temporary files left behind: %s" % partial[:3])
    if set(reference_files) != set(files):
        only_reference = sorted(set(reference_files) - set(files))
        only_here = sorted(set(files) - set(reference_files))
        sys.exit("compare: outputs differ: %d only in the reference (%s), %d only here (%s)"
                 % (len(only_reference), only_reference[:3], len(only_here), only_here[:3]))
    for name in sorted(files):
        with open(files[name], "rb") as a, open(reference_files[name], "rb") as b:
            if hashlib.sha256(a.read()).digest() != hashlib.sha256(b.read()).digest():
                sys.exit("compare: %s differs from the reference's" % name)
        if name.endswith(".png") and not png_is_whole(files[name]):
            sys.exit("compare: %s is not a whole PNG" % name)
    detections = sum(len(record.get("detections", [])) for record in merged.values())
    print("compare: OK: %d pictures in %d parts, one line each, equal to the unsharded run "
          "(%d detections); %d output files byte-identical, all PNGs whole, no temporary files"
          % (len(merged), len(parts), detections, len(files)))


main()

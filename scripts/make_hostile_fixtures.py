#!/usr/bin/env python3
"""Writes the hand-made hostile checkpoints of Tests/EffWeightsTests/Fixtures/hostile/: files a
user can be sent that once killed or hung effdense (issue "Hostile checkpoints and weights").
Plain Python (zlib, struct, json): no torch needed, so anyone can rerun it.

  quadratic_additems.pth     data.pkl = EMPTY_SET + 300,000 x (MARK NONE ADDITEMS): 0.9 MB of pickle
                             that a copy-per-ADDITEMS set made quadratic (minutes)
  quadratic_appends.pth      the same shape with EMPTY_LIST / APPENDS
  quadratic_setitems.pth     the same shape with EMPTY_DICT / SETITEMS (MARK NONE NONE SETITEMS)
  inflate_pickle_3gb.pth     data.pkl deflates from 3 MB to 3 GB (honest sizes)
  inflate_storage_3gb.pth    a valid pickle naming one float32 storage of 750,000,000 elements,
                             whose entry deflates from 3 MB to 3 GB (honest sizes)
  inflate_storage_lying.pth  a storage of 4 float32 values whose entry's header says 16 bytes
                             but whose deflate stream runs on for megabytes
  zero_dims.safetensors      shape [0, 2^40, 2^40], data_offsets [0, 0]
  zero_dims.pth              the same shape through torch's pickle (_rebuild_tensor_v2)
  fractional_shape.safetensors  shape [4.7]: must be refused, not read as [4]
  nonfinite.safetensors      a conv weight holding NaN and a bias holding +inf

    python3 scripts/make_hostile_fixtures.py
"""
import json
import pathlib
import struct
import zipfile
import zlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests/EffWeightsTests/Fixtures/hostile"
OUT.mkdir(parents=True, exist_ok=True)

PROTO2 = b"\x80\x02"
MARK, NONE, STOP = b"(", b"N", b"."
EMPTY_SET, ADDITEMS = b"\x8f", b"\x90"
EMPTY_LIST, APPENDS = b"]", b"e"
EMPTY_DICT, SETITEMS = b"}", b"u"


def torch_zip(path, pickle_bytes, storages=(), compress=zipfile.ZIP_STORED):
    """A torch.save-style zip: archive/data.pkl, archive/version, archive/data/<key>."""
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/version", b"3\n")
        for key, data in storages:
            z.writestr("archive/data/" + key, data)


def deflated_zeros_entry(zf, name, size):
    """Adds `name` holding `size` zero bytes, deflated, streamed (never `size` bytes in memory)."""
    chunk = bytes(1 << 24)
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as entry:
        left = size
        while left:
            n = min(left, len(chunk))
            entry.write(chunk[:n])
            left -= n


def short_unicode(text):
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def pickled_state_dict(name, storage_key, elements, shape, strides):
    """{name: torch._utils._rebuild_tensor_v2(storage, 0, shape, strides, False, OrderedDict())}."""
    def long1(n):
        raw = n.to_bytes((n.bit_length() + 8) // 8 or 1, "little", signed=True)
        return b"\x8a" + bytes([len(raw)]) + raw

    def tuple_of(values):
        return MARK + b"".join(long1(v) for v in values) + b"t"

    rebuild = b"ctorch._utils\n_rebuild_tensor_v2\n"
    persistent = (MARK + short_unicode("storage") + b"ctorch\nFloatStorage\n" + short_unicode(storage_key)
                  + short_unicode("cpu") + long1(elements) + b"t" + b"Q")
    tensor = rebuild + MARK + persistent + long1(0) + tuple_of(shape) + tuple_of(strides) + b"\x89" \
        + b"ccollections\nOrderedDict\n)R" + b"t" + b"R"
    return PROTO2 + b"ccollections\nOrderedDict\n)R" + short_unicode(name) + tensor + b"s" + STOP


def safetensors(path, header, data=b""):
    raw = json.dumps(header).encode()
    raw += b" " * (-(8 + len(raw)) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


# 1. Quadratic pickles (deflated: they are runs of the same three bytes).
n = 300_000
torch_zip(OUT / "quadratic_additems.pth", PROTO2 + EMPTY_SET + (MARK + NONE + ADDITEMS) * n + STOP, compress=zipfile.ZIP_DEFLATED)
torch_zip(OUT / "quadratic_appends.pth", PROTO2 + EMPTY_LIST + (MARK + NONE + APPENDS) * n + STOP, compress=zipfile.ZIP_DEFLATED)
torch_zip(OUT / "quadratic_setitems.pth", PROTO2 + EMPTY_DICT + (MARK + NONE + NONE + SETITEMS) * n + STOP,
          compress=zipfile.ZIP_DEFLATED)

# 2. Entries that inflate to 3 GB.
three_gb = 3_000_000_000
with zipfile.ZipFile(OUT / "inflate_pickle_3gb.pth", "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    deflated_zeros_entry(z, "archive/data.pkl", three_gb)
    z.writestr("archive/version", b"3\n")
with zipfile.ZipFile(OUT / "inflate_storage_3gb.pth", "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr("archive/data.pkl", pickled_state_dict("w", "0", three_gb // 4, (three_gb // 4,), (1,)))
    z.writestr("archive/version", b"3\n")
    deflated_zeros_entry(z, "archive/data/0", three_gb)

# A storage entry whose header says 16 bytes while its deflate stream inflates to 64 MB: zipfile
# writes honest headers, so the sizes of both headers are patched afterwards.
lying = OUT / "inflate_storage_lying.pth"
torch_zip(lying, pickled_state_dict("w", "0", 4, (4,), (1,)), storages=[("0", bytes(64 << 20))],
          compress=zipfile.ZIP_DEFLATED)
data = bytearray(lying.read_bytes())
name = b"archive/data/0"
for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
    at = 0
    while (at := data.find(signature, at)) >= 0:
        name_length_offset = 26 if signature == b"PK\x03\x04" else 28
        header_size = 30 if signature == b"PK\x03\x04" else 46
        name_length = struct.unpack_from("<H", data, at + name_length_offset)[0]
        if data[at + header_size: at + header_size + name_length] == name:
            struct.pack_into("<I", data, at + size_offset, 16)
        at += 4
lying.write_bytes(bytes(data))

# 3. Zero-sized tensors with huge other dimensions.
safetensors(OUT / "zero_dims.safetensors", {"t": {"dtype": "F32", "shape": [0, 2**40, 2**40], "data_offsets": [0, 0]}})
torch_zip(OUT / "zero_dims.pth", pickled_state_dict("t", "0", 0, (0, 2**40, 2**40), (1, 1, 1)), storages=[("0", b"")])
safetensors(OUT / "fractional_shape.safetensors", {"t": {"dtype": "F32", "shape": [4.7], "data_offsets": [0, 16]}},
            struct.pack("<4f", 1, 2, 3, 4))

# 4. Non-finite weights.
weight = [0.5] * 8
weight[5] = float("nan")
safetensors(OUT / "nonfinite.safetensors",
            {"conv.weight": {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 32]},
             "conv.bias": {"dtype": "F32", "shape": [2], "data_offsets": [32, 40]}},
            struct.pack("<8f", *weight) + struct.pack("<2f", 1.0, float("inf")))

for path in sorted(OUT.iterdir()):
    print(f"{path.name}: {path.stat().st_size} bytes")

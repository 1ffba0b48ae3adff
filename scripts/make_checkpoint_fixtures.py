#!/usr/bin/env python3
"""Writes the checkpoint-reader fixtures in Tests/EffWeightsTests/Fixtures with torch and
safetensors, plus expected.json (every tensor's shape and values as torch reads them).

Good files: torch.save zip files (pickle protocol 2 and 4), the legacy (pre-1.6) format,
nested checkpoints ({"state_dict": ...}, {"model": ...}, {"state_dict_ema": ...}),
DataParallel's "module." prefix, float32 / float16 / bfloat16 / int64 / int32 storages,
non-contiguous tensors, storage offsets and shared storages; safetensors in F32, F16, BF16.
Bad files: a pickle that names os.system, a zip whose entry sizes lie.
keys.json: the state-dict key names of the reference models (timm, effdet, smp, torchvision),
for key-layout recognition (names only, no weights).

    pip install torch torchvision timm effdet segmentation-models-pytorch safetensors
    python scripts/make_checkpoint_fixtures.py
"""
import collections
import io
import json
import pathlib
import pickle
import struct
import zipfile

import torch
from safetensors.torch import save_file

torch.manual_seed(7)
OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests/EffWeightsTests/Fixtures"
OUT.mkdir(parents=True, exist_ok=True)


def small_state_dict(dtype=torch.float32):
    base = torch.randn(6, 5)
    shared = torch.randn(40)
    sd = collections.OrderedDict()
    sd["conv_stem.weight"] = torch.randn(4, 3, 3, 3).to(dtype)
    sd["bn1.weight"] = torch.rand(4).to(dtype)
    sd["bn1.running_var"] = (torch.rand(4) + 0.5).to(dtype)
    sd["bn1.num_batches_tracked"] = torch.tensor(123456789012, dtype=torch.int64)
    sd["transposed.weight"] = base.t().to(dtype)                      # non-contiguous strides
    sd["sliced.weight"] = shared[7:19].view(3, 4).to(dtype) if dtype != torch.float32 else shared[7:19].view(3, 4)
    sd["shared.bias"] = shared[20:25] if dtype == torch.float32 else shared[20:25].to(dtype)
    sd["scalar"] = torch.tensor(2.5).to(dtype)
    sd["counts"] = torch.arange(-3, 3, dtype=torch.int32)
    sd["classifier.weight"] = torch.randn(3, 8).to(dtype)
    return sd


expected = {}


def record(name, sd):
    expected[name] = {k: {"shape": list(v.shape), "values": [float(x) for x in v.double().flatten().tolist()]}
                      for k, v in sd.items()}


f32 = small_state_dict()
torch.save(f32, OUT / "state_f32.pth")
record("state_f32.pth", f32)
torch.save(f32, OUT / "state_f32_protocol4.pth", pickle_protocol=4)
record("state_f32_protocol4.pth", f32)
torch.save(f32, OUT / "state_f32_legacy.pth", _use_new_zipfile_serialization=False)
record("state_f32_legacy.pth", f32)
f16 = small_state_dict(torch.float16)
torch.save(f16, OUT / "state_f16.pth")
record("state_f16.pth", f16)
bf16 = small_state_dict(torch.bfloat16)
torch.save(bf16, OUT / "state_bf16.pth")
record("state_bf16.pth", bf16)

# Training checkpoints as timm / effdet write them; timm's loader prefers the EMA weights.
ema = collections.OrderedDict((k, v + 1 if v.is_floating_point() else v) for k, v in f32.items())
torch.save({"epoch": 3, "arch": "tiny", "state_dict": f32, "state_dict_ema": ema, "metric": 0.5,
            "version": 2}, OUT / "train_checkpoint.pth.tar")
record("train_checkpoint.pth.tar", ema)
torch.save({"model": f32, "epoch": 1}, OUT / "model_key.pth")
record("model_key.pth", f32)
torch.save(collections.OrderedDict(("module." + k, v) for k, v in f32.items()), OUT / "data_parallel.pth")
record("data_parallel.pth", f32)

# safetensors needs contiguous, unshared tensors.
for name, sd in [("state_f32.safetensors", f32), ("state_f16.safetensors", f16), ("state_bf16.safetensors", bf16)]:
    plain = {k: v.contiguous().clone() for k, v in sd.items()}
    save_file(plain, str(OUT / name), metadata={"format": "pt"})
    record(name, plain)

# A pickle that would run os.system("echo pwned") if unpickled by Python.
evil = b"\x80\x02cposix\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."
with zipfile.ZipFile(OUT / "evil_global.pth", "w", zipfile.ZIP_STORED) as z:
    z.writestr("evil_global/data.pkl", evil)
    z.writestr("evil_global/version", "3\n")

# A zip whose entry for storage 0 claims fewer bytes than it holds (local and central headers
# patched consistently, CRC left as it was).
buf = io.BytesIO()
torch.save(collections.OrderedDict(w=torch.randn(64)), buf)
data = bytearray(buf.getvalue())
with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
    info = next(i for i in z.infolist() if i.filename.endswith("/data/0"))
local = info.header_offset
assert data[local:local + 4] == b"PK\x03\x04"
struct.pack_into("<II", data, local + 18, info.compress_size - 64, info.file_size - 64)
pos = 0
while True:
    pos = data.find(b"PK\x01\x02", pos)
    name_len = struct.unpack_from("<H", data, pos + 28)[0]
    if data[pos + 46:pos + 46 + name_len].decode().endswith("/data/0"):
        struct.pack_into("<II", data, pos + 20, info.compress_size - 64, info.file_size - 64)
        break
    pos += 4
(OUT / "lying_sizes.pth").write_bytes(bytes(data))

# Key names of the reference models, for layout recognition.
keys = {}
import timm
import torchvision
import segmentation_models_pytorch as smp
from effdet import create_model

keys["timm"] = list(timm.create_model("tf_efficientnet_b0", pretrained=False).state_dict())
keys["timm_lite"] = list(timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict())
keys["effdet"] = list(create_model("tf_efficientdet_d0", pretrained=False, pretrained_backbone=False, bench_task="").state_dict())
keys["smp_deeplabv3plus_lukemelas"] = list(smp.DeepLabV3Plus("efficientnet-b0", encoder_weights=None).state_dict())
keys["smp_deeplabv3plus_timm"] = list(smp.DeepLabV3Plus("timm-efficientnet-b0", encoder_weights=None).state_dict())
keys["torchvision"] = list(torchvision.models.efficientnet_b0().state_dict())
(OUT / "keys.json").write_text(json.dumps(keys))

(OUT / "expected.json").write_text(json.dumps(expected))
print("wrote", sorted(p.name for p in OUT.iterdir()))

#!/usr/bin/env python3
"""Writes the EfficientNet parity fixtures in Tests/EffDenseTests/Fixtures/backbone.

Narrow models (width 0.5, depth 0.34, 10 classes) built by the reference generators themselves
-- timm's _gen_efficientnet / _gen_efficientnet_lite (tf_ and PyTorch-native flavours) and
lukemelas' efficientnet_pytorch -- with seeded random weights and non-trivial BatchNorm
statistics, saved with torch.save in each library's own key layout. For each, NAME.io.safetensors
holds the inputs (NCHW), the features at strides 2..32 (NCHW) and the logits; tf_b0 also holds
its features at output stride 16 and 8 (timm's dilation).

The real ImageNet EfficientNet-Lite0 (weights/efficientnet-lite0-57934424.pth, fetched by
scripts/fetch-weights.sh) is run by its own reference implementation (efficientnet_lite_pytorch)
on the sample photos with timm's evaluation pre-processing for tf_efficientnet_lite0: top-5
classes and probabilities go to lite0_samples.json; the pre-processed chelsea.png input and its
logits to lite0_chelsea.io.safetensors. configs/imagenet_classes.txt comes from torchvision.

    pip install torch torchvision timm safetensors efficientnet_pytorch efficientnet-lite-pytorch pillow
    python scripts/make_backbone_fixtures.py
"""
import json
import pathlib

import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file
from timm.data import create_transform, resolve_data_config
from timm.models import create_model
from timm.models.efficientnet import _gen_efficientnet, _gen_efficientnet_lite

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/EffDenseTests/Fixtures/backbone"
OUT.mkdir(parents=True, exist_ok=True)
torch.manual_seed(20261123)


def randomise_batch_norm(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


inputs = {"input_75x61": torch.randn(1, 3, 75, 61), "input_64x64": torch.randn(1, 3, 64, 64)}
cases = {}

# timm, three flavours.
timm_models = {
    "tf_b0": lambda **kw: _gen_efficientnet("tf_efficientnet_b0", 0.5, 0.34, bn_eps=1e-3, pad_type="same", **kw),
    "pt_b0": lambda **kw: _gen_efficientnet("efficientnet_b0", 0.5, 0.34, **kw),
    "tf_lite0": lambda **kw: _gen_efficientnet_lite("tf_efficientnet_lite0", 0.5, 0.34, bn_eps=1e-3, pad_type="same", **kw),
}
for name, make in timm_models.items():
    model = randomise_batch_norm(make(num_classes=10))
    state = model.state_dict()
    torch.save(state, OUT / f"{name}.pth")
    tensors = {}
    for output_stride in (32, 16, 8) if name == "tf_b0" else (32,):
        features = make(num_classes=10, features_only=True, output_stride=output_stride).eval()
        missing, unexpected = features.load_state_dict(state, strict=False)
        assert not missing, missing
        for input_name, x in inputs.items():
            if output_stride != 32 and input_name != "input_75x61":
                continue
            with torch.no_grad():
                for i, f in enumerate(features(x)):
                    tensors[f"{input_name}.os{output_stride}.feature{i}"] = f.contiguous()
                if output_stride == 32:
                    tensors[f"{input_name}.logits"] = model(x).contiguous()
    tensors.update(inputs)
    save_file(tensors, str(OUT / f"{name}.io.safetensors"))
    cases[name] = sum(p.numel() for p in model.parameters())

# lukemelas EfficientNet-PyTorch (the layout of smp's efficientnet-bN encoders), dynamic SAME padding.
from efficientnet_pytorch import EfficientNet as LukemelasEfficientNet

model = randomise_batch_norm(LukemelasEfficientNet.from_name(
    "efficientnet-b0", width_coefficient=0.5, depth_coefficient=0.34, num_classes=10, image_size=None))
torch.save(model.state_dict(), OUT / "lukemelas_b0.pth")
tensors = dict(inputs)
for input_name, x in inputs.items():
    with torch.no_grad():
        endpoints = model.extract_endpoints(x)
        for i in range(5):
            tensors[f"{input_name}.os32.feature{i}"] = endpoints[f"reduction_{i + 1}"].contiguous()
        tensors[f"{input_name}.logits"] = model(x).contiguous()
save_file(tensors, str(OUT / "lukemelas_b0.io.safetensors"))
cases["lukemelas_b0"] = sum(p.numel() for p in model.parameters())

# ImageNet class names, as torchvision ships them.
labels = torchvision.models._meta._IMAGENET_CATEGORIES
assert len(labels) == 1000
(ROOT / "configs/imagenet_classes.txt").write_text("\n".join(labels) + "\n")

# The real Lite0 through its own implementation, with timm's eval pre-processing.
from efficientnet_lite_pytorch import EfficientNet as LiteEfficientNet

real = ROOT / "weights/efficientnet-lite0-57934424.pth"
lite = LiteEfficientNet.from_name("efficientnet-lite0")
lite.load_state_dict(torch.load(real, map_location="cpu", weights_only=True))
lite.eval()
transform = create_transform(**resolve_data_config({}, model=create_model("tf_efficientnet_lite0", pretrained=False)))
print(transform)
samples = {}
for path in sorted((ROOT / "samples").glob("*.*")):
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        continue
    x = transform(Image.open(path).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        logits = lite(x)
    probabilities = logits.softmax(-1)[0]
    top = probabilities.topk(5)
    samples[path.name] = [{"class_index": int(i), "label": labels[int(i)], "score": float(p)}
                          for p, i in zip(top.values, top.indices)]
    if path.name == "chelsea.png":
        save_file({"input": x.contiguous(), "logits": logits.contiguous()}, str(OUT / "lite0_chelsea.io.safetensors"))
(OUT / "lite0_samples.json").write_text(json.dumps(samples, indent=1))
print(json.dumps({k: [(t["label"], round(t["score"], 3)) for t in v[:3]] for k, v in samples.items()}, indent=1))
print("parameters:", cases)

#!/usr/bin/env python3
"""Writes the DeepLabV3+ parity fixtures in Tests/EffDenseTests/Fixtures/segmentation.

segmentation_models_pytorch's DeepLabV3Plus (21 classes) with the efficientnet-b0 (lukemelas)
and timm-efficientnet-b0 encoders, seeded random weights (rounded to bfloat16-representable
float32 values so the committed files compress) with non-trivial BatchNorm statistics and a head
whose logits are centred and scaled per class (so the mask varies), saved by torch.save. Inputs are samples/chelsea.png resized by Pillow (bilinear) to 160x112 (sides
multiples of 16) and 150x100 (not), stored as PNG, ImageNet-normalised. smp refuses sides that
are not multiples of the output stride, so the 150x100 reference is smp on the input zero-padded
(bottom / right, after normalisation) to 160x112, cropped back -- what effdense does.
NAME.io.safetensors holds inputs (NCHW) and logits (NCHW) for: efficientnet-b0 at output stride
16 (both pictures) and 8, timm-efficientnet-b0 at 16.

    pip install torch segmentation-models-pytorch timm safetensors pillow numpy
    python scripts/make_segmentation_fixtures.py
"""
import pathlib

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/EffDenseTests/Fixtures/segmentation"
OUT.mkdir(parents=True, exist_ok=True)
torch.manual_seed(20261125)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def randomise(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.to(torch.bfloat16).to(torch.float32))
    return model.eval()


def load(name, size):
    chelsea = Image.open(ROOT / "samples/chelsea.png").convert("RGB")
    image = chelsea.resize(size, Image.BILINEAR)
    image.save(OUT / name)
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().unsqueeze(0) / 255
    return ((x - MEAN) / STD).contiguous()


multiple = load("chelsea_160x112.png", (160, 112))
odd = load("chelsea_150x100.png", (150, 100))

for encoder in ["efficientnet-b0", "timm-efficientnet-b0"]:
    model = randomise(smp.DeepLabV3Plus(encoder, encoder_weights=None, classes=21, encoder_output_stride=16))
    with torch.no_grad():
        # Centre and scale each class's logits over the picture (bias -mean/std, weights /std):
        # the mask then varies across the picture instead of one class winning everywhere.
        head = model.segmentation_head[0]
        head.bias.zero_()
        logits = model(multiple)
        mean, std = logits.mean((0, 2, 3)), logits.std((0, 2, 3))
        head.weight.div_(std.view(-1, 1, 1, 1))
        head.bias.copy_(-mean / std)
        for t in (head.weight, head.bias):
            t.copy_(t.to(torch.bfloat16).to(torch.float32))
    key = encoder.replace("-", "_")
    torch.save(model.state_dict(), OUT / f"deeplabv3plus_{key}.pth")
    tensors = {"input_160x112": multiple, "input_150x100": odd}
    with torch.no_grad():
        tensors["os16.logits_160x112"] = model(multiple).contiguous()
        padded = F.pad(odd, (0, 160 - 150, 0, 112 - 100))
        tensors["os16.logits_150x100"] = model(padded)[:, :, :100, :150].contiguous()
        if encoder == "efficientnet-b0":
            os8 = smp.DeepLabV3Plus(encoder, encoder_weights=None, classes=21, encoder_output_stride=8).eval()
            os8.load_state_dict(model.state_dict())
            tensors["os8.logits_160x112"] = os8(multiple).contiguous()
    for name, t in tensors.items():
        if "logits" in name:
            top2 = t.topk(2, dim=1).values
            print(encoder, name, tuple(t.shape), "classes present", t.argmax(1).unique().numel(),
                  "ambiguous pixels", int(((top2[:, 0] - top2[:, 1]) <= 1e-3).sum()))
    save_file(tensors, str(OUT / f"deeplabv3plus_{key}.io.safetensors"))

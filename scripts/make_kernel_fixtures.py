#!/usr/bin/env python3
"""Writes Tests/EffCoreTests/Fixtures/kernels.json: inputs and outputs of the reference
implementations (torch and timm's layers) for the kernels in EffCore.

Run from the repository root with the reference stack installed:
    pip install torch timm
    python scripts/make_kernel_fixtures.py

Tensors are stored NHWC (the layout effdense uses), weights in PyTorch's own layout
(OIHW), so the Swift tests exercise the same weight packing as checkpoint loading does.
"""
import json
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import create_conv2d, create_pool2d
from timm.models._efficientnet_blocks import SqueezeExcite

torch.manual_seed(20261123)
OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests/EffCoreTests/Fixtures/kernels.json"


def nhwc(t):
    t = t.detach().float()
    if t.dim() == 4:
        t = t.permute(0, 2, 3, 1).contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.flatten().tolist()]}


def plain(t):
    t = t.detach().float().contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.flatten().tolist()]}


cases = []


def case(name, op, params, **tensors):
    cases.append({"name": name, "op": op, "params": params, "tensors": tensors})


# Resize: torch's nearest (floor) and bilinear with align_corners True / False.
for shape, size in [((1, 3, 5, 7), (10, 14)), ((1, 4, 7, 5), (3, 4)), ((2, 5, 1, 1), (4, 3)),
                    ((1, 3, 6, 6), (12, 12)), ((1, 2, 9, 13), (5, 7)), ((1, 17, 4, 4), (16, 16))]:
    x = torch.randn(shape)
    y = F.interpolate(x, size=size, mode="nearest")
    case(f"nearest {list(shape)}->{size}", "resizeNearest", {"outHeight": size[0], "outWidth": size[1]},
         input=nhwc(x), output=nhwc(y))
    for align in (True, False):
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=align)
        case(f"bilinear align={align} {list(shape)}->{size}", "resizeBilinear",
             {"outHeight": size[0], "outWidth": size[1], "alignCorners": align}, input=nhwc(x), output=nhwc(y))
# smp's decoder upsamples with nn.UpsamplingBilinear2d(scale_factor=4) (align_corners=True).
x = torch.randn(1, 6, 8, 11)
y = nn.UpsamplingBilinear2d(scale_factor=4)(x)
case("UpsamplingBilinear2d x4", "resizeBilinear", {"outHeight": 32, "outWidth": 44, "alignCorners": True},
     input=nhwc(x), output=nhwc(y))
# effdet's up-sampling: F.interpolate(scale_factor=2, mode="nearest").
x = torch.randn(1, 5, 7, 9)
y = F.interpolate(x, scale_factor=2.0, mode="nearest")
case("nearest scale_factor=2", "resizeNearest", {"outHeight": 14, "outWidth": 18}, input=nhwc(x), output=nhwc(y))

# Pooling: timm's TF "SAME" max/avg pools (-inf / zero padding), torch's explicit padding.
for shape in [(1, 4, 7, 7), (1, 3, 8, 8), (1, 5, 9, 6), (2, 3, 1, 1), (1, 3, 2, 2), (1, 19, 5, 12)]:
    x = torch.randn(shape)
    pool = create_pool2d("max", 3, stride=2, padding="same")
    case(f"maxpool same k3s2 {list(shape)}", "maxPool2D", {"kernel": 3, "stride": 2, "padding": "same"},
         input=nhwc(x), output=nhwc(pool(x)))
    pool = create_pool2d("avg", 3, stride=2, padding="same")
    case(f"avgpool same k3s2 {list(shape)}", "avgPool2D",
         {"kernel": 3, "stride": 2, "padding": "same", "countIncludePad": True}, input=nhwc(x), output=nhwc(pool(x)))
    y = F.max_pool2d(x, 3, 2, padding=1)
    case(f"maxpool k3s2p1 {list(shape)}", "maxPool2D", {"kernel": 3, "stride": 2, "padding": "explicit:1"},
         input=nhwc(x), output=nhwc(y))
    for include in (True, False):
        y = F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=include)
        case(f"avgpool k3s2p1 include={include} {list(shape)}", "avgPool2D",
             {"kernel": 3, "stride": 2, "padding": "explicit:1", "countIncludePad": include},
             input=nhwc(x), output=nhwc(y))
    case(f"global avg pool {list(shape)}", "globalAveragePool", {}, input=nhwc(x),
         output=nhwc(x.mean((2, 3), keepdim=True)))

# Convolutions through timm's create_conv2d ('same' = TF SAME, '' = PyTorch symmetric).
for cin, cout, k, s, d, pad, hw in [(5, 7, 3, 2, 1, "same", (9, 8)), (5, 7, 3, 2, 1, "same", (8, 8)),
                                    (3, 16, 3, 2, 1, "same", (17, 13)), (3, 16, 3, 2, 1, "", (17, 13)),
                                    (4, 6, 3, 1, 2, "", (10, 9)), (6, 5, 1, 1, 1, "", (7, 5)),
                                    (6, 5, 5, 2, 1, "same", (11, 12)), (8, 3, 1, 2, 1, "", (6, 7))]:
    conv = create_conv2d(cin, cout, k, stride=s, dilation=d, padding=pad, bias=True)
    x = torch.randn(1, cin, *hw)
    case(f"conv k{k} s{s} d{d} pad='{pad}' {cin}->{cout} {hw}", "conv2d",
         {"stride": s, "dilation": d, "padding": "same" if pad == "same" else "symmetric"},
         input=nhwc(x), weight=plain(conv.weight), bias=plain(conv.bias), output=nhwc(conv(x)))
for c, k, s, d, pad, hw in [(7, 3, 1, 1, "same", (6, 5)), (7, 3, 2, 1, "same", (9, 8)), (18, 5, 2, 1, "same", (10, 11)),
                            (18, 5, 1, 1, "", (7, 7)), (5, 3, 1, 2, "", (9, 10)), (5, 3, 1, 4, "", (12, 9)),
                            (20, 3, 1, 4, "same", (11, 13)), (3, 5, 2, 1, "", (8, 9)), (33, 3, 2, 1, "same", (1, 1))]:
    conv = create_conv2d(c, c, k, stride=s, dilation=d, padding=pad, depthwise=True, bias=True)
    x = torch.randn(1, c, *hw)
    case(f"depthwise k{k} s{s} d{d} pad='{pad}' c{c} {hw}", "depthwiseConv2d",
         {"stride": s, "dilation": d, "padding": "same" if pad == "same" else "symmetric"},
         input=nhwc(x), weight=plain(conv.weight), bias=plain(conv.bias), output=nhwc(conv(x)))

# BatchNorm folded into a convolution (eps 1e-3 as TF-ported weights), then SiLU.
for depthwise in (False, True):
    c = 6
    conv = create_conv2d(c, c if depthwise else 9, 3, stride=1, padding="same", depthwise=depthwise, bias=False)
    bn = nn.BatchNorm2d(conv.out_channels, eps=1e-3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_(0, 0.3)
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.3, 2.0)
    bn.eval()
    x = torch.randn(1, c, 7, 6)
    y = F.silu(bn(conv(x)))
    case(f"conv+bn(eps 1e-3)+silu depthwise={depthwise}", "depthwiseConv2dBN" if depthwise else "conv2dBN",
         {"stride": 1, "dilation": 1, "padding": "same", "eps": 1e-3, "activation": "silu"},
         input=nhwc(x), weight=plain(conv.weight), bnWeight=plain(bn.weight), bnBias=plain(bn.bias),
         bnMean=plain(bn.running_mean), bnVar=plain(bn.running_var), output=nhwc(y))

# Squeeze-and-excitation as EfficientNet's blocks build it (rd = 0.25 of the block input).
se = SqueezeExcite(24, rd_channels=4, act_layer=nn.SiLU)
x = torch.randn(2, 24, 5, 6)
case("squeeze-excite 24->4", "squeezeExcite", {}, input=nhwc(x),
     reduceWeight=plain(se.conv_reduce.weight), reduceBias=plain(se.conv_reduce.bias),
     expandWeight=plain(se.conv_expand.weight), expandBias=plain(se.conv_expand.bias), output=nhwc(se(x)))

# Softmax / sigmoid / argmax over channels.
x = torch.randn(1, 10, 3, 4) * 3
case("softmax channels", "softmaxChannels", {}, input=nhwc(x), output=nhwc(torch.softmax(x, 1)))
case("sigmoid", "sigmoid", {}, input=nhwc(x), output=nhwc(torch.sigmoid(x)))
case("argmax channels", "argmaxChannels", {}, input=nhwc(x), output=plain(x.argmax(1).float()))

OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps({"generator": "scripts/make_kernel_fixtures.py", "torch": torch.__version__,
                           "cases": cases}))
print(f"wrote {len(cases)} cases to {OUT}")

#!/usr/bin/env python3
"""Writes the parity matrix in Tests/EffDenseTests/Fixtures/matrix: every model family effdense
names, built by its reference library, checked by Tests/EffDenseTests/ParityMatrixTests.swift.

Rows (matrix.json lists them with what the Swift side needs to rebuild each model):
  smp      segmentation_models_pytorch DeepLabV3Plus with the efficientnet-b0..b7 (lukemelas,
           static SAME padding for the nominal size) and timm-efficientnet-b0..b7 encoders, at
           output stride 16 and 8, on a square and a non-square input whose sides differ from
           the nominal size.
  lukemelas  efficientnet_pytorch EfficientNet.from_name('efficientnet-b0'..'b7') and
           efficientnet_lite_pytorch's 'efficientnet-lite0'..'lite4' classifiers (static padding for
           the nominal size) on a non-nominal, non-square input.
  torchvision  torchvision.models.efficientnet_b0..b7 classifiers (its key layout, BatchNorm eps
           1e-3 for B5-B7) on the same input, and each level's IMAGENET1K_V1 pre-processing of
           samples/chelsea.png (sampled).
  effdet   EfficientDet tf_efficientdet_d0..d7, d7x, efficientdet_d0/d1, tf_efficientdet_lite0..4
           (effdet's own configs: Lite0 at 320 is not a multiple of 2^max_level) on
           samples/coffee.jpg (600x400, letterboxed; 4096 sampled canvas bytes): raw outputs sampled
           at 4096 positions of all levels, and DetBenchPredict's detections (boxes wholly in the
           padding included).

Committed fixtures stay small: the encoders' widths are scaled down (width 0.125 of the named
model's own width; depth, kernels, strides, nominal image size, dilation and feature blocks are
the named model's own), the DeepLabV3+ decoder has 32 channels and 5 classes. Full-size models:
`--full NAME...` writes them (with the same checks) to a folder outside the repo instead, for
the on-demand run the note reports (scripts/parity_full.sh).

Weights are seeded random, BatchNorm statistics calibrated (running mean / var measured on
random inputs in train mode, then perturbed), rounded to bfloat16 and saved by torch.save as
bfloat16 (effdense reads BF16 storages exactly). The heads are scaled so logits have unit spread
per class and masks hold several classes. Reference outputs are computed in float64 (the same
weights and inputs) and stored as float32; the script prints how far torch's own float32 run is
from them, which must stay well inside the tests' tolerance (1e-4 abs / 1e-3 rel).

    pip install torch torchvision timm effdet segmentation-models-pytorch safetensors efficientnet_pytorch \
        efficientnet-lite-pytorch pillow numpy
    python scripts/make_parity_matrix.py [--full efficientnet-b3 efficientnet-b4 --out /tmp/parity-full]
"""
import argparse
import json
import pathlib
import zlib

import segmentation_models_pytorch as smp
import segmentation_models_pytorch.encoders.efficientnet as smp_lukemelas
import segmentation_models_pytorch.encoders.timm_efficientnet as smp_timm
import torch
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
parser = argparse.ArgumentParser()
parser.add_argument("--full", nargs="*", default=None, help="full-size smp encoders to check instead of the narrow matrix")
parser.add_argument("--out", default=str(ROOT / "Tests/EffDenseTests/Fixtures/matrix"))
parser.add_argument("--only-detectors", action="store_true", help="rewrite the effdet rows only, keeping the others")
parser.add_argument("--only-torchvision", action="store_true", help="rewrite the torchvision rows only, keeping the others")
parser.add_argument("--only-lite", action="store_true", help="rewrite the efficientnet-lite rows only, keeping the others")
args = parser.parse_args()
OUT = pathlib.Path(args.out)
OUT.mkdir(parents=True, exist_ok=True)
NARROW = 0.125
SCALING = {f"b{i}": s for i, s in enumerate([(1.0, 1.0, 224), (1.0, 1.1, 240), (1.1, 1.2, 260), (1.2, 1.4, 300),
                                               (1.4, 1.8, 380), (1.6, 2.2, 456), (1.8, 2.6, 528), (2.0, 3.1, 600)])}
SEGMENTATION_INPUTS = {"64x64": (64, 64), "80x48": (48, 80)}   # name WxH: (H, W)
CLASSIFIER_INPUT = ("100x76", (76, 100))


def calibrate_and_round(model, inputs):
    """BatchNorm running statistics measured on `inputs` (train mode, cumulative), perturbed so
    they are not exactly the batch's, then every float tensor rounded to bfloat16 values."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            with torch.no_grad():
                m.weight.uniform_(0.7, 1.3)
                m.bias.normal_(0, 0.1)
    model.train()
    with torch.no_grad():
        for x in inputs:
            model(x)
    model.eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.add_(torch.randn_like(m.running_mean) * 0.05)
                # A floor on the variances keeps deep models well conditioned: a near-constant
                # channel divided by its tiny variance would amplify float32 rounding (then torch
                # itself, in float32, would miss its own float64 result by more than the tolerance).
                m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.8, 1.25))
                m.running_var.add_(0.5 * m.running_var.mean())
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.to(torch.bfloat16).to(torch.float32))
    return model


def scale_head(conv, outputs):
    """Centre and scale each output channel of the last layer over all `outputs()` (bias
    -mean/std, weights /std), so every input's mask or scores spread over the classes."""
    with torch.no_grad():
        conv.bias.zero_()
        out = torch.cat([o.transpose(0, 1).reshape(o.shape[1], -1) for o in outputs()], dim=1)
        mean, std = out.mean(1), out.std(1) + 1e-6
        shape = (-1,) + (1,) * (conv.weight.dim() - 1)
        conv.weight.div_(std.view(shape))
        conv.bias.copy_(-mean / std)
        for t in (conv.weight, conv.bias):
            t.copy_(t.to(torch.bfloat16).to(torch.float32))


def save_bf16(model, path):
    torch.save({k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in model.state_dict().items()}, path)


def reference(model, x, what):
    """`model(x)` computed in float64 (then float32), and how far torch's float32 run is from it."""
    with torch.no_grad():
        single = model(x)
        model.double()
        exact = model(x.double()).float()
        model.float()
    error = float((single - exact).abs().max())
    print(f"  {what}: torch float32 vs float64 {error:.2e}", "  <-- ILL-CONDITIONED" if error > 2e-5 else "")
    return exact.contiguous()


def ambiguous(logits):
    top2 = logits.topk(2, dim=1).values
    return int(((top2[:, 0] - top2[:, 1]) <= 1e-3).sum())


def photo(name, h, w):
    """A sample photo resized (bilinear) to h x w, ImageNet-normalised, NCHW: real structure, so
    masks vary across the picture."""
    from PIL import Image
    import numpy as np
    source = "chelsea.png"
    image = Image.open(ROOT / "samples" / source).convert("RGB").resize((w, h), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().unsqueeze(0) / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


# --- smp DeepLabV3Plus --------------------------------------------------------------------------

def narrow_smp(encoder, width_scale):
    """Patches smp's encoder tables so `encoder` is built `width_scale` times as wide."""
    if width_scale == 1.0:
        return
    b = encoder.split("-")[-1]
    w, d, s = SCALING[b]
    if encoder.startswith("efficientnet-"):
        entry = smp_lukemelas.efficient_net_encoders[encoder]
        original = smp_lukemelas.get_model_params

        def get_model_params(name, override_params):
            blocks, params = original(name, override_params)
            return blocks, params._replace(width_coefficient=w * width_scale)

        smp_lukemelas.get_model_params = get_model_params
        probe = smp_lukemelas.EfficientNetEncoder(out_indexes=entry["params"]["out_indexes"], out_channels=[0] * 6, model_name=encoder)
        x = probe(torch.zeros(1, 3, 64, 64))
        entry["params"]["out_channels"] = [f.shape[1] for f in x]
    else:
        entry = smp_timm.timm_efficientnet_encoders[encoder]
        entry["params"] = dict(entry["params"], channel_multiplier=w * width_scale)
        probe = smp_timm.EfficientNetEncoder(**entry["params"])
        entry["params"]["out_channels"] = [f.shape[1] for f in probe(torch.zeros(1, 3, 64, 64))]
    smp.encoders.encoders[encoder] = entry


def smp_row(encoder, width_scale, decoder_channels, classes):
    narrow_smp(encoder, width_scale)
    inputs = {name: photo(name, h, w) for name, (h, w) in SEGMENTATION_INPUTS.items()}
    model = smp.DeepLabV3Plus(encoder, encoder_weights=None, classes=classes, encoder_output_stride=16,
                              decoder_channels=decoder_channels)
    calibrate_and_round(model, [torch.cat([x, x.flip(-1)]) for x in inputs.values()] * 2)
    scale_head(model.segmentation_head[0], lambda: [model(x) for x in inputs.values()])
    key = "smp_" + encoder.replace("-", "_")
    save_bf16(model, OUT / f"{key}.pth")
    tensors, cases = {}, []
    for output_stride in (16, 8):
        net = model
        if output_stride == 8:
            net = smp.DeepLabV3Plus(encoder, encoder_weights=None, classes=classes, encoder_output_stride=8,
                                    decoder_channels=decoder_channels).eval()
            net.load_state_dict(model.state_dict())
        for name, x in inputs.items():
            logits = reference(net, x, f"{key} OS{output_stride} {name}")
            tensors[f"input_{name}"] = x.contiguous()
            tensors[f"os{output_stride}.logits_{name}"] = logits.contiguous()
            classes_present = logits.argmax(1).unique().numel()
            print(f"{key} OS{output_stride} {name}: classes present {classes_present}, ambiguous pixels {ambiguous(logits)}")
            cases.append({"output_stride": output_stride, "input": name})
    save_file(tensors, str(OUT / f"{key}.io.safetensors"))
    return {"kind": "smp", "name": encoder, "width_scale": width_scale, "decoder_channels": decoder_channels,
            "classes": classes, "checkpoint": f"{key}.pth", "io": f"{key}.io.safetensors", "cases": cases}


# --- lukemelas classifiers ------------------------------------------------------------------------

LITE_SCALING = {f"lite{i}": s for i, s in enumerate([(1.0, 1.0, 224), (1.0, 1.1, 240), (1.1, 1.2, 260), (1.2, 1.4, 280),
                                                       (1.4, 1.8, 300)])}


def lukemelas_row(name, width_scale):
    if "lite" in name:   # efficientnet_lite_pytorch: lukemelas' code for the Lite models
        from efficientnet_lite_pytorch import EfficientNet
        w, d, s = LITE_SCALING[name.split("-")[-1]]
    else:
        from efficientnet_pytorch import EfficientNet
        w, d, s = SCALING[name.split("-")[-1]]
    model = EfficientNet.from_name(name, width_coefficient=w * width_scale, num_classes=10)
    assert model._global_params.image_size == s
    input_name, (h, wd) = CLASSIFIER_INPUT
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    x = torch.randn(1, 3, h, wd, generator=g)
    calibrate_and_round(model, [torch.randn(2, 3, h, wd, generator=g) for _ in range(2)])
    # The classifier keeps its default initialisation: scaling it by the spread of logits over a
    # few inputs (small for pooled features) would make the row ill-conditioned.
    key = "lukemelas_" + name.replace("-", "_")
    save_bf16(model, OUT / f"{key}.pth")
    logits = reference(model, x, f"{key} {input_name}")
    save_file({f"input_{input_name}": x.contiguous(), f"logits_{input_name}": logits}, str(OUT / f"{key}.io.safetensors"))
    print(f"{key} {input_name}: logits {logits[0, :4].tolist()}")
    return {"kind": "lukemelas", "name": name, "width_scale": width_scale, "classes": 10, "checkpoint": f"{key}.pth",
            "io": f"{key}.io.safetensors", "cases": [{"input": input_name}]}


# --- torchvision classifiers ----------------------------------------------------------------------

def torchvision_row(level, width_scale):
    import functools
    from torchvision.models import efficientnet as tv
    w, d, s = SCALING[f"b{level}"]
    setting, last_channel = tv._efficientnet_conf(f"efficientnet_b{level}", width_mult=w * width_scale, depth_mult=d)
    norm = functools.partial(torch.nn.BatchNorm2d, eps=0.001, momentum=0.01) if level >= 5 else None
    model = tv.EfficientNet(setting, dropout=0.2, last_channel=last_channel, num_classes=10, norm_layer=norm)
    name = f"efficientnet_b{level}"
    input_name, (h, wd) = CLASSIFIER_INPUT
    g = torch.Generator().manual_seed(zlib.crc32(("torchvision" + name).encode()))
    x = torch.randn(1, 3, h, wd, generator=g)
    calibrate_and_round(model, [torch.randn(2, 3, h, wd, generator=g) for _ in range(2)])
    key = "torchvision_" + name
    save_bf16(model, OUT / f"{key}.pth")
    logits = reference(model, x, f"{key} {input_name}")
    # torchvision's own pre-processing of this level (IMAGENET1K_V1 transforms) on a sample photo,
    # sampled at 4096 positions of the CHW tensor.
    from PIL import Image
    transforms = getattr(tv, f"EfficientNet_B{level}_Weights").IMAGENET1K_V1.transforms()
    photo_tensor = transforms(Image.open(ROOT / "samples/chelsea.png").convert("RGB")).unsqueeze(0)
    photo_index = torch.randint(0, photo_tensor.numel(), (4096,), generator=g)
    save_file({f"input_{input_name}": x.contiguous(), f"logits_{input_name}": logits,
               "preprocessed.shape": torch.tensor(list(photo_tensor.shape)), "preprocessed.index": photo_index,
               "preprocessed.value": photo_tensor.reshape(-1)[photo_index].contiguous()}, str(OUT / f"{key}.io.safetensors"))
    return {"kind": "torchvision", "name": name, "width_scale": width_scale, "classes": 10, "checkpoint": f"{key}.pth",
            "io": f"{key}.io.safetensors", "cases": [{"input": input_name}]}


# --- effdet EfficientDet ------------------------------------------------------------------------

DETECTORS = [f"tf_efficientdet_d{i}" for i in range(8)] + ["tf_efficientdet_d7x", "efficientdet_d0", "efficientdet_d1"] \
    + [f"tf_efficientdet_lite{i}" for i in range(5)]


def narrow_timm_backbones(width_scale):
    """Makes timm's EfficientNet generators build `width_scale` times narrower networks (effdet
    creates its backbone through them by name)."""
    import timm.models.efficientnet as timm_efficientnet
    for generator in ("_gen_efficientnet", "_gen_efficientnet_lite"):
        original = getattr(timm_efficientnet, generator)

        def narrow(variant, channel_multiplier=1.0, *a, _original=original, **kw):
            return _original(variant, channel_multiplier * width_scale, *a, **kw)
        setattr(timm_efficientnet, generator, narrow)
    return lambda: [setattr(timm_efficientnet, g, o) for g, o in
                    (("_gen_efficientnet", timm_efficientnet._gen_efficientnet.__kwdefaults__["_original"]),
                     ("_gen_efficientnet_lite", timm_efficientnet._gen_efficientnet_lite.__kwdefaults__["_original"]))]


def effdet_row(name, width_scale, fpn_channels, classes, samples=4096):
    """effdet's EfficientDet `name` (its own config: image size, levels, BiFPN repeats and
    fusion, heads, anchors, padding, activation) with the backbone `width_scale` as wide, the BiFPN
    `fpn_channels` wide and `classes` classes, on samples/coffee.jpg (600x400) through effdet's
    evaluation transform: sampled raw outputs of every level and DetBenchPredict's detections."""
    import numpy as np
    from PIL import Image
    from effdet import DetBenchPredict, EfficientDet, get_efficientdet_config
    from effdet.data.transforms import transforms_coco_eval
    config = get_efficientdet_config(name)
    if width_scale != 1.0:
        config.fpn_channels = fpn_channels
        config.num_classes = classes
        restore = narrow_timm_backbones(width_scale)
    model = EfficientDet(config, pretrained_backbone=False)
    if width_scale != 1.0:
        restore()
    mean, std = tuple(config.get("mean", (0.485, 0.456, 0.406))), tuple(config.get("std", (0.229, 0.224, 0.225)))
    transform = transforms_coco_eval(config.image_size[0], interpolation="bilinear", use_prefetcher=True,
                                     fill_color="mean", mean=mean, std=std)
    image = Image.open(ROOT / "samples/coffee.jpg").convert("RGB")
    canvas, info = transform(image, {})
    m = torch.tensor([v * 255 for v in mean]).view(1, 3, 1, 1)
    sd = torch.tensor([v * 255 for v in std]).view(1, 3, 1, 1)
    x = ((torch.from_numpy(canvas).float().unsqueeze(0) - m) / sd).contiguous()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("edge_weights"):
                p.uniform_(-0.3, 1.5)   # some negative: fast attention's relu matters
    calibrate_and_round(model, [torch.cat([x, x.flip(-1)])] * 2)
    # Class logits with unit spread around -2 (NMS decisions well defined), box deltas small.
    with torch.no_grad():
        predict = model.class_net.predict.conv_pw
        predict.bias.zero_()
        spread = torch.cat([c.flatten() for c in model(x)[0]]).std()
        predict.weight.div_(spread)
        predict.bias.fill_(-2.0)   # most scores well below 1: the best ones stay distinct in float32
        model.box_net.predict.conv_pw.weight.mul_(0.1)
        for t in (predict.weight, model.box_net.predict.conv_pw.weight):
            t.copy_(t.to(torch.bfloat16).to(torch.float32))
    key = "effdet_" + name
    save_bf16(model, OUT / f"{key}.pth")
    model.double()
    with torch.no_grad():
        class_out, box_out = model(x.double())
    model.float()

    class Outputs(torch.nn.Module):
        """DetBenchPredict's post-processing (float32, as effdet runs it) on the float64 outputs."""
        def __init__(self):
            super().__init__()
            self.config = config

        def forward(self, _):
            return [c.float() for c in class_out], [b.float() for b in box_out]

    with torch.no_grad():
        img_info = {"img_scale": torch.tensor([info["img_scale"]], dtype=torch.float32),
                    "img_size": torch.tensor([image.size], dtype=torch.float32)}
        detections = DetBenchPredict(Outputs()).eval()(x, img_info=img_info)[0]
    with torch.no_grad():
        single = model(x)[0]
    print(f"  {key}: torch float32 vs float64 {max(float((a - b).abs().max()) for a, b in zip(single, class_out)):.2e}")
    flat_class = torch.cat([c.permute(0, 2, 3, 1).reshape(-1) for c in class_out]).float()
    flat_box = torch.cat([b.permute(0, 2, 3, 1).reshape(-1) for b in box_out]).float()
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    class_index = torch.randint(0, flat_class.numel(), (samples,), generator=g)
    box_index = torch.randint(0, flat_box.numel(), (samples,), generator=g)
    canvas_flat = torch.from_numpy(np.ascontiguousarray(canvas.transpose(1, 2, 0))).reshape(-1)   # HWC uint8
    canvas_index = torch.randint(0, canvas_flat.numel(), (samples,), generator=g)
    tensors = {"canvas.index": canvas_index, "canvas.value": canvas_flat[canvas_index].to(torch.int64),
               "class.index": class_index, "class.value": flat_class[class_index].contiguous(),
               "box.index": box_index, "box.value": flat_box[box_index].contiguous(), "detections": detections.contiguous(),
               "img_scale": torch.tensor([info["img_scale"]], dtype=torch.float32),
               "class.count": torch.tensor([flat_class.numel()]), "box.count": torch.tensor([flat_box.numel()])}
    save_file(tensors, str(OUT / f"{key}.io.safetensors"))
    scores = detections[:, 4]
    print(f"{key} {tuple(config.image_size)}: top scores {[round(v, 4) for v in scores[:3].tolist()]}, "
          f"min gap {float((scores[:-1] - scores[1:]).min()):.2e}, boxes in the padding {int((detections[:, 1] >= 400).sum())}")
    return {"kind": "effdet", "name": name, "width_scale": width_scale, "fpn_channels": config.fpn_channels,
            "classes": config.num_classes, "checkpoint": f"{key}.pth", "io": f"{key}.io.safetensors",
            "cases": [{"input": "coffee.jpg"}]}


torch.manual_seed(20261124)
rows = []
if args.full is not None:
    for name in args.full:
        rows.append(effdet_row(name, 1.0, 0, 0) if name in DETECTORS else smp_row(name, 1.0, 256, 21))
elif args.only_torchvision:
    rows = [r for r in json.loads((OUT / "matrix.json").read_text())["rows"] if r["kind"] != "torchvision"]
    for b in range(8):
        rows.append(torchvision_row(b, NARROW))
elif args.only_lite:
    rows = [r for r in json.loads((OUT / "matrix.json").read_text())["rows"] if "lite" not in r["name"] or r["kind"] != "lukemelas"]
    for i in range(5):
        rows.append(lukemelas_row(f"efficientnet-lite{i}", NARROW))
elif args.only_detectors:
    rows = [r for r in json.loads((OUT / "matrix.json").read_text())["rows"] if r["kind"] != "effdet"]
    for name in DETECTORS:
        rows.append(effdet_row(name, NARROW, 16, 4))
else:
    for b in range(8):
        rows.append(smp_row(f"efficientnet-b{b}", NARROW, 32, 5))
        rows.append(smp_row(f"timm-efficientnet-b{b}", NARROW, 32, 5))
        rows.append(lukemelas_row(f"efficientnet-b{b}", NARROW))
        rows.append(torchvision_row(b, NARROW))
    for name in DETECTORS:
        rows.append(effdet_row(name, NARROW, 16, 4))
    for i in range(5):
        rows.append(lukemelas_row(f"efficientnet-lite{i}", NARROW))
(OUT / "matrix.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
print(f"{len(rows)} rows, {sum(p.stat().st_size for p in OUT.iterdir()) / 1e6:.1f} MB in {OUT}")

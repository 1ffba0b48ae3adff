#!/usr/bin/env python3
"""Writes the EfficientDet parity fixtures in Tests/EffDenseTests/Fixtures/detection.

For tf_efficientdet_d0 and efficientdet_d0 as effdet builds them (official key layout, full
size), with seeded random weights (rounded to bfloat16-representable float32 values so the
committed files compress) and non-trivial BatchNorm statistics and fusion weights, saved by
torch.save. Two pictures go through effdet's evaluation pre-processing (transforms_coco_eval:
aspect-preserving bilinear resize, top-left paste on a mean-colour canvas, ImageNet
normalisation): samples/astronaut.jpg (512x512, square) and samples/coffee.jpg (600x400, needs
resizing and padding). The letterboxed canvas is stored as PNG; NAME.io.safetensors holds the
raw class outputs (levels 6, 7 whole; 20000 random NHWC positions of levels 3-5), the box
outputs of every level (NHWC), and DetBenchPredict's detections with img_scale / img_size.

    pip install torch effdet timm safetensors pillow numpy
    python scripts/make_detection_fixtures.py
"""
import pathlib

import numpy as np
import torch
from effdet import DetBenchPredict, create_model
from effdet.data.transforms import transforms_coco_eval
from PIL import Image
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/EffDenseTests/Fixtures/detection"
OUT.mkdir(parents=True, exist_ok=True)
IMAGES = ["astronaut.jpg", "coffee.jpg"]
torch.manual_seed(20261124)


def randomise(model):
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        for name, p in model.named_parameters():
            if name.endswith("edge_weights"):
                p.uniform_(-0.3, 1.5)   # some negative: fast attention's relu matters
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.to(torch.bfloat16).to(torch.float32))
    return model.eval()


def spread_class_logits(model, x):
    """Zero the class bias and scale the class weights so the logits have std 1: the best scores
    then differ by ~1e-5, far above float noise, so NMS decisions are well defined."""
    with torch.no_grad():
        predict = model.class_net.predict.conv_pw
        predict.bias.zero_()
        std = torch.cat([c.flatten() for c in model(x)[0]]).std()
        predict.weight.div_(std)
        predict.weight.copy_(predict.weight.to(torch.bfloat16).to(torch.float32))


for name in ["tf_efficientdet_d0", "efficientdet_d0"]:
    model = randomise(create_model(name, pretrained=False, pretrained_backbone=False, bench_task=""))
    config = model.config
    config_mean = tuple(config.get("mean", (0.485, 0.456, 0.406)))
    config_std = tuple(config.get("std", (0.229, 0.224, 0.225)))
    bench = DetBenchPredict(model).eval()
    mean = torch.tensor([x * 255 for x in config_mean]).view(1, 3, 1, 1)
    std = torch.tensor([x * 255 for x in config_std]).view(1, 3, 1, 1)
    transform = transforms_coco_eval(config.image_size[0], interpolation="bilinear", use_prefetcher=True,
                                     fill_color="mean", mean=config_mean, std=config_std)
    probe = transform(Image.open(ROOT / "samples" / IMAGES[0]).convert("RGB"), {})[0]
    spread_class_logits(model, (torch.from_numpy(probe).float().unsqueeze(0) - mean) / std)
    torch.save(model.state_dict(), OUT / f"{name}.pth")
    tensors = {}
    for image_name in IMAGES:
        image = Image.open(ROOT / "samples" / image_name).convert("RGB")
        canvas, info = transform(image, {})
        Image.fromarray(np.ascontiguousarray(canvas.transpose(1, 2, 0))).save(OUT / f"{image_name}.letterbox.png")
        x = (torch.from_numpy(canvas).float().unsqueeze(0) - mean) / std
        with torch.no_grad():
            class_out, box_out = model(x)
            img_info = {"img_scale": torch.tensor([info["img_scale"]], dtype=torch.float32),
                        "img_size": torch.tensor([image.size], dtype=torch.float32)}
            detections = bench(x, img_info=img_info)[0]
        key = image_name.split(".")[0]
        g = torch.Generator().manual_seed(5)
        for level, (c, b) in enumerate(zip(class_out, box_out)):
            c = c.permute(0, 2, 3, 1).reshape(-1)
            if level < 3:
                index = torch.randint(0, c.numel(), (20000,), generator=g)
                tensors[f"{key}.class{level}.index"] = index
                tensors[f"{key}.class{level}.value"] = c[index].contiguous()
            else:
                tensors[f"{key}.class{level}"] = c.contiguous()
            tensors[f"{key}.box{level}"] = b.permute(0, 2, 3, 1).contiguous()
        tensors[f"{key}.detections"] = detections.contiguous()
        tensors[f"{key}.img_scale"] = torch.tensor([info["img_scale"]], dtype=torch.float32)
        scores = detections[:, 4]
        print(name, image_name, "img_scale", info["img_scale"], "top scores", scores[:5].tolist(),
              "min gap between consecutive scores", float((scores[:-1] - scores[1:]).min()))
    save_file(tensors, str(OUT / f"{name}.io.safetensors"))

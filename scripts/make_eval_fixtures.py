"""Fixtures for `effdense eval`: COCO-format ground truth and detections with the hard cases
(crowd regions, tiny / medium / large objects, tied scores, images without detections or without
ground truth, categories without ground truth, detections of unknown categories), the 12 stats
and per-class AP of pycocotools' COCOeval (and faster-coco-eval's, where installed); and
segmentation masks with their IoU figures from segmentation_models_pytorch's metrics and NumPy.

    ../refenv/bin/python scripts/make_eval_fixtures.py
"""
import json
import os
import random

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "EffEvalTests", "Fixtures", "eval")
os.makedirs(OUT, exist_ok=True)
rng = random.Random(2024)


def box(size_class, width=640, height=480):
    side = {"tiny": rng.uniform(2, 31), "medium": rng.uniform(33, 95), "large": rng.uniform(97, 300)}[size_class]
    aspect = rng.uniform(0.5, 2.0)
    w, h = side * aspect ** 0.5, side / aspect ** 0.5
    x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
    return [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]


def jitter(b, amount):
    x, y, w, h = b
    return [x + rng.uniform(-amount, amount) * w, y + rng.uniform(-amount, amount) * h,
            w * (1 + rng.uniform(-amount, amount)), h * (1 + rng.uniform(-amount, amount))]


# Categories with non-contiguous ids; 7 and 11 never appear in the ground truth.
categories = [{"id": i, "name": f"class{i}", "supercategory": "thing"} for i in (1, 2, 3, 5, 7, 11)]
images = [{"id": 100 + i, "file_name": f"img{i}.jpg", "width": 640, "height": 480} for i in range(12)]
annotations, detections = [], []
ann_id = 1
for image in images:
    n = rng.randint(0, 7) if image["id"] != 105 else 0      # image 105: no ground truth
    for _ in range(n):
        category = rng.choice((1, 2, 3, 5))
        b = box(rng.choice(("tiny", "medium", "large")))
        crowd = 1 if rng.random() < 0.1 else 0
        # The annotation's own area (as COCO's polygons give), not always w*h.
        area = b[2] * b[3] * (rng.uniform(0.6, 1.0) if rng.random() < 0.5 else 1.0)
        annotations.append({"id": ann_id, "image_id": image["id"], "category_id": category, "bbox": b,
                            "area": area, "iscrowd": crowd})
        ann_id += 1
        if image["id"] == 107:
            continue                                        # image 107: no detections at all
        # Detections: most objects found (some twice), some missed; crowds hit several times.
        for _ in range(rng.choice((0, 1, 1, 1, 2, 3 if crowd else 1))):
            detections.append({"image_id": image["id"], "category_id": category if rng.random() < 0.9 else rng.choice((1, 2, 3, 5, 7)),
                               "bbox": [round(v, 3) for v in jitter(b, rng.choice((0.02, 0.1, 0.3)))],
                               "score": round(rng.choice((0.9, 0.5, rng.random())), 3)})
    if image["id"] != 107:
        for _ in range(rng.randint(0, 4)):                  # false positives, some with tied scores
            detections.append({"image_id": image["id"], "category_id": rng.choice((1, 2, 3, 5, 11)),
                               "bbox": [round(v, 2) for v in box(rng.choice(("tiny", "medium", "large")))],
                               "score": rng.choice((0.5, 0.9, round(rng.random(), 3)))})
# One image with more than 100 detections of one category (maxDets truncation, ties at the cut).
for i in range(130):
    detections.append({"image_id": 111, "category_id": 2, "bbox": [i * 4.0, 10.0, 30.0, 30.0],
                       "score": 0.3 if i % 3 else 0.7})
annotations.append({"id": ann_id, "image_id": 111, "category_id": 2, "bbox": [8.0, 10.0, 30.0, 30.0], "area": 900.0, "iscrowd": 0})

ground_truth = {"info": {"description": "effdense eval fixture"}, "images": images, "annotations": annotations,
                "categories": categories}
with open(os.path.join(OUT, "coco_gt.json"), "w") as f:
    json.dump(ground_truth, f)
with open(os.path.join(OUT, "coco_dets.json"), "w") as f:
    json.dump(detections, f)

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

coco = COCO(os.path.join(OUT, "coco_gt.json"))
results = coco.loadRes(os.path.join(OUT, "coco_dets.json"))
evaluator = COCOeval(coco, results, "bbox")
evaluator.evaluate()
evaluator.accumulate()
evaluator.summarize()
precision = evaluator.eval["precision"]            # [T, R, K, A, M]
per_class = {}
for k, cat in enumerate(evaluator.params.catIds):
    p = precision[:, :, k, 0, 2]
    per_class[str(cat)] = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
# A subset of images, as effdet's validate.py evaluates only the images it ran.
subset = COCOeval(coco, results, "bbox")
subset.params.imgIds = [100, 101, 102, 103, 104, 105]
subset.evaluate(); subset.accumulate(); subset.summarize()
expected = {"stats": [float(s) for s in evaluator.stats], "per_class_ap": per_class,
            "subset_image_ids": [100, 101, 102, 103, 104, 105], "subset_stats": [float(s) for s in subset.stats]}
try:
    from faster_coco_eval import COCO as FCOCO, COCOeval_faster
    fgt = FCOCO(os.path.join(OUT, "coco_gt.json"))
    fdt = fgt.loadRes(os.path.join(OUT, "coco_dets.json"))
    fe = COCOeval_faster(fgt, fdt, "bbox", print_function=print)
    fe.evaluate(); fe.accumulate(); fe.summarize()
    expected["faster_coco_eval_stats"] = [float(s) for s in fe.stats[:12]]
except ImportError:
    pass
with open(os.path.join(OUT, "coco_stats.json"), "w") as f:
    json.dump(expected, f, indent=1)

# Segmentation: 4 ground-truth / prediction pairs, 6 classes (5 never present), VOC's 255 border.
import torch
import segmentation_models_pytorch as smp

classes = 6
masks_gt, masks_pred = [], []
os.makedirs(os.path.join(OUT, "seg_gt"), exist_ok=True)
os.makedirs(os.path.join(OUT, "seg_pred"), exist_ok=True)
np_rng = np.random.default_rng(7)
for i, (h, w) in enumerate([(37, 53), (64, 48), (20, 20), (41, 70)]):
    gt = np.zeros((h, w), np.uint8)
    for _ in range(5):
        y0, x0 = np_rng.integers(0, h), np_rng.integers(0, w)
        gt[y0:y0 + np_rng.integers(3, h), x0:x0 + np_rng.integers(3, w)] = np_rng.integers(0, 5)
    pred = gt.copy()
    noise = np_rng.random((h, w)) < 0.2
    pred[noise] = np_rng.integers(0, 5, noise.sum())
    gt[0, :] = 255                                           # ignored border row
    gt[:, -1] = 255
    masks_gt.append(gt); masks_pred.append(pred)
    palette = sum(([c, c, c] for c in range(256)), [])
    for folder, mask in (("seg_gt", gt), ("seg_pred", pred)):
        image = Image.fromarray(mask, mode="P")
        image.putpalette(palette)
        image.save(os.path.join(OUT, folder, f"m{i}.png"))
tp = fp = fn = tn = None
stats = [smp.metrics.get_stats(torch.from_numpy(p[None].astype(np.int64)), torch.from_numpy(g[None].astype(np.int64)),
                               mode="multiclass", num_classes=classes, ignore_index=255) for p, g in zip(masks_pred, masks_gt)]
tp, fp, fn, tn = (torch.cat([s[j] for s in stats]) for j in range(4))
per_class_smp = smp.metrics.iou_score(tp.sum(0, keepdim=True), fp.sum(0, keepdim=True), fn.sum(0, keepdim=True),
                                      tn.sum(0, keepdim=True), reduction=None, zero_division=float("nan"))[0]
smp_macro = smp.metrics.iou_score(tp, fp, fn, tn, reduction="macro")     # zero_division 1.0 for absent classes
# NumPy reference: confusion matrix over non-ignored pixels.
confusion = np.zeros((classes, classes), np.int64)
for g, p in zip(masks_gt, masks_pred):
    keep = g != 255
    np.add.at(confusion, (g[keep], p[keep]), 1)
inter = np.diag(confusion).astype(np.float64)
union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
with np.errstate(invalid="ignore", divide="ignore"):
    iou = inter / union
seg = {"num_classes": classes, "ignore_index": 255,
       "per_class_iou_smp": [None if np.isnan(v) else float(v) for v in per_class_smp.tolist()],
       "per_class_iou_numpy": [None if np.isnan(v) else float(v) for v in iou],
       "miou_present": float(np.nanmean(iou)),
       "smp_macro_iou": float(smp_macro),
       "pixel_accuracy": float(inter.sum() / confusion.sum()),
       "confusion": confusion.tolist()}
with open(os.path.join(OUT, "seg_metrics.json"), "w") as f:
    json.dump(seg, f, indent=1)
print("wrote", OUT)

# End to end: effdet's DetBenchPredict with the detection parity fixture's weights over the sample
# pictures; a ground truth built from some of its boxes (moved a little, a crowd, a miss) and
# pycocotools' stats of effdet's own results on it, for `effdense eval detect` to reproduce.
import pathlib
from effdet import DetBenchPredict, create_model
from effdet.data.transforms import transforms_coco_eval

ROOT = pathlib.Path(__file__).resolve().parent.parent
model = create_model("tf_efficientdet_d0", pretrained=False, pretrained_backbone=False)
model.load_state_dict(torch.load(ROOT / "Tests/EffDenseTests/Fixtures/detection/tf_efficientdet_d0.pth", map_location="cpu"))
bench = DetBenchPredict(model).eval()
mean_rgb, std_rgb = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
transform = transforms_coco_eval(512, interpolation="bilinear", use_prefetcher=True, fill_color="mean", mean=mean_rgb, std=std_rgb)
mean_t = torch.tensor([x * 255 for x in mean_rgb]).view(1, 3, 1, 1)
std_t = torch.tensor([x * 255 for x in std_rgb]).view(1, 3, 1, 1)
samples = ["astronaut.jpg", "coffee.jpg", "chelsea.png", "rocket.jpg"]
e2e_images, e2e_annotations, e2e_results = [], [], []
for i, name in enumerate(samples):
    picture = Image.open(ROOT / "samples" / name).convert("RGB")
    canvas, info = transform(picture, {})
    x = (torch.from_numpy(canvas).float().unsqueeze(0) - mean_t) / std_t
    with torch.no_grad():
        out = bench(x, img_info={"img_scale": torch.tensor([info["img_scale"]], dtype=torch.float32),
                                 "img_size": torch.tensor([picture.size], dtype=torch.float32)})[0].numpy()
    e2e_images.append({"id": i + 1, "file_name": name, "width": picture.width, "height": picture.height})
    for j, det in enumerate(out):
        x1, y1, x2, y2, score, label = (float(v) for v in det)
        if score < 0.001:
            break
        e2e_results.append({"image_id": i + 1, "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
        if j % 7 == 0:                                   # every 7th box is an object, moved by up to 20%
            w, h = x2 - x1, y2 - y1
            b = [x1 + rng.uniform(-0.2, 0.2) * w, y1 + rng.uniform(-0.2, 0.2) * h, w, h]
            e2e_annotations.append({"id": len(e2e_annotations) + 1, "image_id": i + 1, "category_id": int(label), "bbox": b,
                                    "area": w * h, "iscrowd": 1 if j == 14 else 0})
e2e_gt = {"images": e2e_images, "annotations": e2e_annotations,
          "categories": [{"id": c, "name": f"cls{c}"} for c in range(1, 91)]}
with open(os.path.join(OUT, "samples_gt.json"), "w") as f:
    json.dump(e2e_gt, f)
coco = COCO(os.path.join(OUT, "samples_gt.json"))
results = coco.loadRes(e2e_results)
evaluator = COCOeval(coco, results, "bbox")
evaluator.params.imgIds = [1, 2, 3, 4]
evaluator.evaluate(); evaluator.accumulate(); evaluator.summarize()
with open(os.path.join(OUT, "samples_stats.json"), "w") as f:
    json.dump({"stats": [float(s) for s in evaluator.stats], "detections": len(e2e_results)}, f, indent=1)

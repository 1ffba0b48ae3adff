"""A small trained DeepLabV3+ (smp, efficientnet-b0 encoder, 4 classes) for the tiled-versus-whole
agreement test: a random-weight model's near-tied logits flip with any change of context, so it
cannot tell whether tiling works; a trained one decides like a real model does.

    HF_HUB_OFFLINE=1 ../refenv/bin/python scripts/make_tiling_fixture.py     # ~25 min on 2 cores
    HF_HUB_OFFLINE=1 ../refenv/bin/python scripts/make_tiling_fixture.py --masks-only   # the masks alone

The task is local and real: each pixel's colour family in the sample photos, after a small blur —
0 dark, 1 pale (grey / white), 2 warm (red, orange, yellow), 3 cool (green, blue, purple) —
learned from random scaled crops of samples/ (256 to 640 pixels), mostly in 2 x 2 mosaics
(encoder from scratch, no download). It prints the
pixel accuracy and class shares on the 2048 x 2048 mosaic the test uses, and refuses to write a
model that predicts one class nearly everywhere. Writes
Tests/EffDenseTests/Fixtures/segmentation/deeplabv3plus_b0_colours.safetensors (F16), and smp's
own masks of the mosaic, whole and in 1024 tiles (colours_mosaic_*.png).
"""
import pathlib

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/EffDenseTests/Fixtures/segmentation/deeplabv3plus_b0_colours.safetensors"
torch.manual_seed(0)
rng = np.random.default_rng(0)
torch.set_num_threads(2)


def colour_classes(picture):
    """The per-pixel colour family of a PIL RGB picture, as uint8 (H, W)."""
    hsv = np.asarray(picture.filter(ImageFilter.GaussianBlur(2)).convert("HSV")).astype(np.float32) / 255
    hue, saturation, value = hsv[..., 0] * 360, hsv[..., 1], hsv[..., 2]
    labels = np.where((hue < 75) | (hue >= 300), 2, 3).astype(np.uint8)
    labels[saturation < 0.25] = 1
    labels[value < 0.25] = 0
    return labels


photos = [Image.open(ROOT / "samples" / name).convert("RGB") for name in ["astronaut.jpg", "coffee.jpg", "chelsea.png", "rocket.jpg"]]
mosaic = Image.new("RGB", (2048, 2048))
for i, photo in enumerate(photos):
    mosaic.paste(photo.resize((1024, 1024), Image.BICUBIC), ((i % 2) * 1024, (i // 2) * 1024))
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def to_tensor(pictures):
    array = np.stack([np.asarray(p, dtype=np.float32) / 255 for p in pictures])
    return (torch.from_numpy(array).permute(0, 3, 1, 2) - mean) / std


def random_crop(side):
    photo = photos[rng.integers(len(photos))]
    scale = rng.uniform(0.35, 1.6)
    scaled = photo.resize((max(side, int(photo.width * scale)), max(side, int(photo.height * scale))), Image.BICUBIC)
    x, y = rng.integers(0, scaled.width - side + 1), rng.integers(0, scaled.height - side + 1)
    crop = scaled.crop((x, y, x + side, y + side))
    return crop.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def batch():
    # Crops of 256 to 640 pixels, fewer at a time when larger (about as many pixels a step): a
    # model that has seen both near and far picture borders decides a pixel the same way in a
    # 1024 tile and in the whole picture (trained on 256 crops alone, 98.3% agreement).
    side = int(rng.choice([256, 384, 512, 640]))
    size = max(2, (8 * 256 * 256) // (side * side))   # 2 at least: the ASPP pooling branch normalises over the batch
    return batch_of(size, side)


def batch_of(size, side):
    # Most samples are 2 x 2 mosaics of crops of different photos (mosaic augmentation, as YOLO
    # trains): a picture's overall colour then says little about any one pixel's class, so the
    # model decides from what is near, as a real segmentation model mostly does, not from the
    # ASPP image-pooling branch's summary of the whole input.
    pictures, labels = [], []
    for _ in range(size):
        if rng.random() < 0.75:
            picture = Image.new("RGB", (side, side))
            split_x, split_y = rng.integers(side // 4, 3 * side // 4 + 1, size=2)
            for left, top, right, bottom in [(0, 0, split_x, split_y), (split_x, 0, side, split_y),
                                             (0, split_y, split_x, side), (split_x, split_y, side, side)]:
                picture.paste(random_crop(side).crop((0, 0, right - left, bottom - top)), (int(left), int(top)))
        else:
            picture = random_crop(side)
        pictures.append(picture)
        labels.append(colour_classes(picture))
    return to_tensor(pictures), torch.from_numpy(np.stack(labels)).long()


model = smp.DeepLabV3Plus("efficientnet-b0", encoder_weights=None, classes=4)
MASKS = ROOT / "Tests/EffDenseTests/Fixtures/segmentation"


def tile_axis(length, tile=1024, overlap=128, multiple=16):
    """effdense's TileAxis: the fewest tiles that cover the axis overlapping by `overlap`, spread
    evenly, each start rounded down to a multiple of `multiple` (the network's size multiple: the
    tiles' feature grids then fall on the whole picture's); the last tile runs to the axis' end.
    Returns (start, end, owned start, owned end) per tile: each pixel is owned by the tile in which
    it lies farthest from an edge (the middles of the overlaps)."""
    tile = min(tile, length)
    count = 1 if length <= tile else 1 + -(-(length - tile) // (tile - overlap))
    starts = [0] if count == 1 else [i * (length - tile) // (count - 1) // multiple * multiple for i in range(count)]
    ends = [s + tile for s in starts[:-1]] + [length]
    owned = [(0 if i == 0 else (starts[i] + ends[i - 1]) // 2, length if i == count - 1 else (starts[i + 1] + ends[i]) // 2)
             for i in range(count)]
    return [(s, e, lo, hi) for s, e, (lo, hi) in zip(starts, ends, owned)]


class PooledMeans:
    """Hooks every global average pool of the model (the encoder's squeeze-and-excitation and the
    ASPP image pooling, in call order): records them, or hands back given means instead."""
    def __init__(self):
        self.original, self.mode, self.means, self.calls = F.adaptive_avg_pool2d, None, [], 0
        import torch.nn.modules.pooling as pooling
        F.adaptive_avg_pool2d = pooling.F.adaptive_avg_pool2d = self

    def __call__(self, tensor, size):
        index, self.calls = self.calls, self.calls + 1
        if self.mode == "give":
            return self.means[index]
        pooled = self.original(tensor, size)
        if self.mode == "record":
            self.means.append(pooled)
        return pooled

    def run(self, x, mode=None):
        self.mode, self.calls = mode, 0
        if mode == "record":
            self.means = []
        with torch.no_grad():
            return model(x)


def write_reference_masks():
    """smp's masks of the mosaic with the stored (F16) weights: the whole picture at once, and
    tile by tile as `segment --tile 1024 --overlap 128` cuts it (tile_axis: tiles at 0, 512, 1024
    on each axis, each pixel from the tile it is most central in), with each tile's global pools
    (SE, ASPP image pooling) its own (`--context tile`) and, as effdense does by default
    (`--context picture`), the means of the picture at a quarter of its size (Pillow bilinear:
    here one 512 x 512 run) — as 8-bit gray PNGs of class indices."""
    from safetensors.torch import load_file
    stored = load_file(str(OUT))
    model.load_state_dict({k: v.float() if v.dtype == torch.float16 else v for k, v in stored.items()})
    model.eval()
    pools = PooledMeans()
    x = to_tensor([mosaic])
    whole = pools.run(x).argmax(1)[0].numpy().astype(np.uint8)
    pools.run(to_tensor([mosaic.resize((512, 512), Image.BILINEAR)]), "record")
    axis = tile_axis(2048)
    for context in ["tile", "picture"]:
        tiled = np.zeros_like(whole)
        for top, bottom, row_from, row_to in axis:
            for left, right, col_from, col_to in axis:
                tile = pools.run(x[:, :, top:bottom, left:right], "give" if context == "picture" else None).argmax(1)[0].numpy()
                tiled[row_from:row_to, col_from:col_to] = tile[row_from - top:row_to - top, col_from - left:col_to - left]
        Image.fromarray(tiled, "L").save(MASKS / f"colours_mosaic_tiled_1024_128_{context}.png")
        print("smp: tiled (1024 / 128, context %s) and whole masks agree on %.4f of the pixels" % (context, (whole == tiled).mean()))
    Image.fromarray(whole, "L").save(MASKS / "colours_mosaic_whole.png")


if __import__("sys").argv[1:] == ["--masks-only"]:
    write_reference_masks()
    raise SystemExit(0)
optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
steps = 1200
schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps, pct_start=0.1)
model.train()
for step in range(steps):
    images, labels = batch()
    loss = F.cross_entropy(model(images), labels)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    schedule.step()
    if step % 50 == 0 or step == steps - 1:
        print("step %d loss %.4f" % (step, loss.item()), flush=True)

model.eval()
state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
state.update({k: v for k, v in model.state_dict().items() if not v.dtype.is_floating_point})
# Judge the model as it is stored (F16 weights, run in float32).
model.load_state_dict({k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()})
with torch.no_grad():
    predicted = model(to_tensor([mosaic])).argmax(1)[0].numpy()
truth = colour_classes(mosaic)
accuracy = (predicted == truth).mean()
shares = np.bincount(predicted.ravel(), minlength=4) / predicted.size
print("mosaic: pixel accuracy %.4f, predicted class shares %s, label shares %s"
      % (accuracy, np.round(shares, 3), np.round(np.bincount(truth.ravel(), minlength=4) / truth.size, 3)))
if accuracy < 0.85 or shares.max() > 0.7:
    raise SystemExit("the model did not learn the task well enough to judge tiling; not written")
save_file(state, str(OUT))
print("wrote %s (%.1f MB)" % (OUT, OUT.stat().st_size / 1e6))
write_reference_masks()

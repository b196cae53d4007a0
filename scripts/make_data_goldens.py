#!/usr/bin/python3
"""Writes the torchvision goldens for tests/data/test_transforms.cpp.

Run with Debian's interpreter (it sees python3-torchvision and python3-pil):
    /usr/bin/python3 scripts/make_data_goldens.py
Each file: b"DPG1", int64 h, w (input), h*w*3 uint8 input (HWC RGB), int64 c, oh, ow,
c*oh*ow float32 output of torchvision's Resize(shorter) + CenterCrop(crop) + ToTensor + Normalize
on the PIL image (PIL bilinear, which antialiases when shrinking). Little-endian.
"""
import os
import struct

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "golden")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def procedural(h, w, seed):
    # Smooth gradients, a sinusoid and some texture: enough structure for resampling differences
    # to show, deterministic without shipping an image.
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)
    g = 255 * x / w
    b = 255 * (y / h) ** 2
    img = np.stack([r, g, b], axis=-1) + rng.uniform(-20, 20, size=(h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write(name, img, resize, crop):
    t = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop),
                            transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    out = t(Image.fromarray(img)).numpy().astype(np.float32)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(b"DPG1")
        f.write(struct.pack("<qq", *img.shape[:2]))
        f.write(img.tobytes())
        f.write(struct.pack("<qqq", *out.shape))
        f.write(out.tobytes())
    print(name, img.shape, "->", out.shape, os.path.getsize(os.path.join(OUT, name)), "bytes")


def rrc_stats():
    # torchvision's own RandomResizedCrop.get_params on a 400x300 image: the mean area fraction
    # and mean log aspect ratio the C++ sampler must reproduce statistically.
    torch.manual_seed(0)
    img = torch.zeros(3, 300, 400)
    areas, logr = [], []
    for _ in range(20000):
        i, j, h, w = transforms.RandomResizedCrop.get_params(img, (0.08, 1.0), (3 / 4, 4 / 3))
        areas.append(h * w / (300 * 400))
        logr.append(np.log(w / h))
    print("RandomResizedCrop 300x400: mean area fraction %.4f, mean log ratio %.4f" %
          (np.mean(areas), np.mean(logr)))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write("resize_center_mild.bin", procedural(97, 131, 1), 64, 48)      # 1.5x reduction
    write("resize_center_strong.bin", procedural(120, 160, 2), 24, 24)   # 5x reduction
    write("resize_center_up.bin", procedural(40, 30, 3), 56, (48, 40))   # enlargement
    rrc_stats()

#!/usr/bin/python3
"""Writes the golden files that tests/nets compares dp-engine's nets against (PyTorch CPU float32).

Run with Debian's interpreter (python3-torch 1.13, python3-torchvision):
    /usr/bin/python3 scripts/make_net_goldens.py [out_dir]      # default tests/nets/golden

Files (little-endian "DPTENS1" containers, read by tests/nets/golden_io.h without PyTorch/HDF5):
  resnet18_10cls_64px.dpt  torchvision resnet18(num_classes=10), input 2x3x64x64
  wrn16_2_10cls_32px.dpt   the reference WideResNet-16-2 (10 classes), input 2x3x32x32
  resnet18_state_dict.txt  name/dtype/shape of torchvision resnet18 (1000 classes)
  wrn28_10_state_dict.txt  name/dtype/shape of the reference WRN-28-10 (100 classes)

Weights are not stored (ResNet-18 alone is 45 MB): every state_dict entry i is filled with
Philox4x32-10 draws, seed GOLDEN_SEED, stream i (state_dict order), value
float32(lo + (hi - lo) * u) with u = (word >> 8) * 2^-24 -- dp::philox_uniform on the C++ side.
Each entry's (lo, hi) is stored as "range/<name>". Integer buffers (num_batches_tracked) are
stored as they are. Parameter gradients are stored in full up to SAMPLE elements, otherwise at
the flat indices (i * numel) // SAMPLE, i < SAMPLE, plus [sum, sum of squares] over all elements.

Per mode M in {train, eval}, starting each time from the same initial state:
  M/logits, M/loss, M/grad/<name> or M/grad_sample/<name> + M/grad_stats/<name>,
  M/state/<buffer> (buffers after the forward: the BN running statistics in train mode).
"""
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

GOLDEN_SEED = 20240601
SAMPLE = 1024
MAGIC = b"DPTENS1\0"
DTYPES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.int64): 2}


# ---- Philox4x32-10, as engine/rng.h ------------------------------------------------------
def philox_words(seed, stream, n):
    """The first n 32-bit words of stream `stream` under `seed` (dp::philox_u32(seed, stream, 0..n-1))."""
    blocks = (n + 3) // 4
    m32 = np.uint64(0xFFFFFFFF)
    b = np.arange(blocks, dtype=np.uint64)
    c0 = b & m32
    c1 = b >> np.uint64(32)
    c2 = np.full(blocks, stream & 0xFFFFFFFF, dtype=np.uint64)
    c3 = np.full(blocks, (stream >> 32) & 0xFFFFFFFF, dtype=np.uint64)
    k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & m32
        hi1, lo1 = p1 >> np.uint64(32), p1 & m32
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
        k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=1).reshape(-1)[:n]


def philox_fill(seed, stream, shape, lo, hi):
    n = int(np.prod(shape)) if len(shape) else 1
    u = (philox_words(seed, stream, n) >> np.uint64(8)).astype(np.float64) * 2.0**-24
    return (lo + (hi - lo) * u).astype(np.float32).reshape(shape)


# ---- the reference WideResNet, re-implemented from docs/method.md §5 --------------------------------
class WideBasic(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=True)
        self.dropout = nn.Dropout(p=0.0)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=True))

    def forward(self, x):
        out = self.dropout(self.conv1(F.relu(self.bn1(x))))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    def __init__(self, depth, k, num_classes):
        super().__init__()
        assert (depth - 4) % 6 == 0
        n = (depth - 4) // 6
        widths = [16, 16 * k, 32 * k, 64 * k]
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=True)
        self.layer1 = self._stage(widths[1], n, 1)
        self.layer2 = self._stage(widths[2], n, 2)
        self.layer3 = self._stage(widths[3], n, 2)
        self.bn1 = nn.BatchNorm2d(widths[3], momentum=0.9)
        self.linear = nn.Linear(widths[3], num_classes)

    def _stage(self, planes, n, stride):
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(WideBasic(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward(self, x):
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8).view(out.size(0), -1)
        return self.linear(out)


# ---- container ----------------------------------------------------------------------------
def write_container(path, entries):
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<Q", len(entries)))
        for name, arr in entries:
            arr = np.asarray(arr)  # (np.ascontiguousarray would turn 0-d into 1-d)
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<BB", DTYPES[arr.dtype], arr.ndim))
            f.write(struct.pack("<%dq" % arr.ndim, *arr.shape))
            f.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes(order="C"))


def value_range(name, t):
    """The (lo, hi) each kind of entry is drawn from: sizes like a trained net's."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "weight" and t.dim() >= 2:
        b = 1.0 / math.sqrt(t[0].numel())
        return -b, b
    if leaf == "weight":  # BN gamma
        return 0.5, 1.5
    if leaf == "bias":
        return -0.2, 0.2
    if leaf == "running_mean":
        return -0.2, 0.2
    if leaf == "running_var":
        return 0.5, 1.5
    raise ValueError(name)


def initial_state(model):
    state, ranges = {}, []
    for i, (name, t) in enumerate(model.state_dict().items()):
        if t.dtype == torch.int64:
            state[name] = torch.full_like(t, 3)
        else:
            lo, hi = value_range(name, t)
            state[name] = torch.from_numpy(philox_fill(GOLDEN_SEED, i, tuple(t.shape), lo, hi))
            ranges.append(("range/" + name, np.array([lo, hi], dtype=np.float64)))
    return state, ranges


def grad_entries(prefix, model):
    out = []
    for name, p in model.named_parameters():
        g = p.grad.detach().numpy().reshape(-1).copy()
        if g.size <= SAMPLE:
            out.append((f"{prefix}/grad/{name}", g.reshape(p.shape)))
        else:
            idx = (np.arange(SAMPLE, dtype=np.int64) * g.size) // SAMPLE
            out.append((f"{prefix}/grad_sample/{name}", g[idx]))
            g64 = g.astype(np.float64)
            out.append((f"{prefix}/grad_stats/{name}", np.array([g64.sum(), (g64 * g64).sum()])))
    return out


def make_golden(path, model, input_shape, num_classes):
    torch.manual_seed(0)
    state, entries = initial_state(model)
    x = torch.from_numpy(philox_fill(GOLDEN_SEED, 1 << 40, input_shape, -2.0, 2.0))
    labels = torch.arange(input_shape[0], dtype=torch.int64) * 7 % num_classes
    entries += [("input", x.numpy()), ("labels", labels.numpy())]
    for name, t in state.items():
        if t.dtype == torch.int64:
            entries.append(("state/" + name, t.numpy()))
    for mode in ("train", "eval"):
        model.load_state_dict(state)
        model.train(mode == "train")
        model.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        entries.append((f"{mode}/logits", logits.detach().numpy()))
        entries.append((f"{mode}/loss", np.array(loss.item(), dtype=np.float32)))
        entries += grad_entries(mode, model)
        for name, b in model.named_buffers():
            entries.append((f"{mode}/state/{name}", b.detach().numpy().copy()))
    # A few raw Philox words, so a generator mismatch is reported as such.
    entries.append(("check/philox_words", philox_words(GOLDEN_SEED, 7, 8).astype(np.int64)))
    write_container(path, entries)
    print(f"{path}: {len(entries)} entries, {os.path.getsize(path)} bytes, "
          f"{sum(p.numel() for p in model.parameters())} parameters")


def write_names(path, model):
    params = sum(p.numel() for p in model.parameters())
    with open(path, "w") as f:
        f.write(f"# {type(model).__name__} state_dict: name dtype shape; {params} parameters\n")
        for name, t in model.state_dict().items():
            f.write(f"{name} {str(t.dtype).replace('torch.', '')} {','.join(map(str, t.shape))}\n")
    print(f"{path}: {params} parameters")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "nets", "golden")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    write_names(os.path.join(out, "resnet18_state_dict.txt"), torchvision.models.resnet18(num_classes=1000))
    write_names(os.path.join(out, "wrn28_10_state_dict.txt"), WideResNet(28, 10, 100))
    make_golden(os.path.join(out, "resnet18_10cls_64px.dpt"), torchvision.models.resnet18(num_classes=10),
                (2, 3, 64, 64), 10)
    make_golden(os.path.join(out, "wrn16_2_10cls_32px.dpt"), WideResNet(16, 2, 10), (2, 3, 32, 32), 10)


if __name__ == "__main__":
    main()

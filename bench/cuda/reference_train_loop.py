#!/usr/bin/env python3
"""The reference's CIFAR training loop (apple/ml-data-parameters, main_cifar.py), re-implemented
on a dp-pack folder, for an end-to-end throughput comparison with dp-train on the same machine:

    python3 bench/cuda/reference_train_loop.py --data .kit/cifar10-packed --epochs 2 --workers 16 \
        --json OUT/reference.json

What it does per epoch, as the reference does: a torchvision-style Dataset (PIL decode of each
JPEG, RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize) behind a DataLoader
(shuffle, pin_memory, --workers processes); WRN-28-10 (the reference's, scripts/make_net_goldens.py)
under bf16 autocast with channels-last model and inputs; SGD (lr 0.1, momentum 0.9, wd 5e-4);
with --inst, instance-level data parameters (log σ per sample, init 1, logits / σ, their own
sparse SGD with momentum on the batch's rows, lr 0.2, wd 0, clamped to [1/20, 20]); loss.item()
and top-1 every iteration (the reference's AverageMeter); then a full pass over the test split.
Labels of the first --rand-fraction of a random permutation of the training set are replaced by
a permutation of those labels (the reference's protocol; the seed differs from dp-train's, which
does not matter for speed). Prints and writes img/s per epoch: training only and end to end
(training + evaluation).
"""
import argparse
import csv
import io
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from make_net_goldens import WideResNet  # noqa: E402  (the reference WRN, re-implemented)

MEAN = (0.4914, 0.4822, 0.4465)  # the reference's CIFAR normalisation
STD = (0.2023, 0.1994, 0.2010)


class PackedSplit(torch.utils.data.Dataset):
    """One split of a dp-pack folder (data/packed.h): SPLIT.jpgs + SPLIT.csv."""

    def __init__(self, folder, split, transform, labels=None):
        self.path = os.path.join(folder, split + ".jpgs")
        with open(os.path.join(folder, split + ".csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        self.offsets = np.array([int(r["offset"]) for r in rows], dtype=np.int64)
        self.lengths = np.array([int(r["length"]) for r in rows], dtype=np.int64)
        self.labels = np.array([int(r["label"]) for r in rows], dtype=np.int64) if labels is None else labels
        self.transform = transform
        self.data = None  # mapped lazily, in each worker process

    def __len__(self):
        return len(self.offsets)

    def __getitem__(self, index):
        if self.data is None:
            self.data = np.memmap(self.path, dtype=np.uint8, mode="r")
        start = int(self.offsets[index])
        raw = self.data[start:start + int(self.lengths[index])].tobytes()
        image = Image.open(io.BytesIO(raw)).convert("RGB")
        return self.transform(image), int(self.labels[index]), index


def permutation_noise(labels, fraction, seed):
    rng = np.random.RandomState(seed)
    noisy = labels.copy()
    chosen = rng.permutation(len(labels))[: int(round(fraction * len(labels)))]
    noisy[chosen] = labels[chosen][rng.permutation(len(chosen))]
    return noisy


def make_model(arch, classes):
    depth, width = {"wrn-28-10": (28, 10), "wrn-10-1": (10, 1)}[arch]
    return WideResNet(depth, width, classes)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dp-pack folder (classes.txt, train.jpgs/.csv, test.jpgs/.csv)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--arch", default="wrn-28-10", choices=["wrn-28-10", "wrn-10-1"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--contiguous", action="store_true", help="NCHW instead of channels-last")
    p.add_argument("--no-inst", action="store_true", help="without instance-level data parameters")
    p.add_argument("--rand-fraction", type=float, default=0.4)
    p.add_argument("--max-batches", type=int, default=0, help="stop each epoch after N batches (tiny mode)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    import torchvision.transforms as T

    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # as the reference sets
    with open(os.path.join(a.data, "classes.txt")) as f:
        classes = [line.strip() for line in f if line.strip()]
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    test_tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    train = PackedSplit(a.data, "train", train_tf)
    train.labels = permutation_noise(train.labels, a.rand_fraction, seed=1)
    test = PackedSplit(a.data, "test", test_tf)
    loader_args = dict(num_workers=a.workers, pin_memory=cuda, persistent_workers=a.workers > 0)
    train_loader = torch.utils.data.DataLoader(train, batch_size=a.batch_size, shuffle=True, **loader_args)
    test_loader = torch.utils.data.DataLoader(test, batch_size=100, shuffle=False, **loader_args)

    fmt = torch.contiguous_format if a.contiguous else torch.channels_last
    model = make_model(a.arch, len(classes)).to(dev).to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    inst = not a.no_inst
    theta = torch.zeros(len(train), device=dev)  # log σ, σ init 1
    theta_momentum = torch.zeros_like(theta)
    log_lo, log_hi = float(np.log(1 / 20)), float(np.log(20))
    autocast = dict(device_type=dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16")

    epochs = []
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        model.train()
        seen = 0
        loss_sum = correct = 0.0
        for b, (x, y, idx) in enumerate(train_loader):
            if a.max_batches and b >= a.max_batches:
                break
            x = x.to(dev, non_blocking=True).to(memory_format=fmt)
            y = y.to(dev, non_blocking=True)
            idx = idx.to(dev, non_blocking=True)
            with torch.autocast(**autocast):
                logits = model(x)
            logits = logits.float()
            if inst:
                th = theta[idx].clone().requires_grad_(True)
                loss = F.cross_entropy(logits / th.exp()[:, None], y)
            else:
                loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if inst:  # the reference's SparseSGD: only the batch's rows, momentum 0.9, wd 0
                with torch.no_grad():
                    theta_momentum[idx] = 0.9 * theta_momentum[idx] + th.grad
                    theta[idx] = (theta[idx] - 0.2 * theta_momentum[idx]).clamp_(log_lo, log_hi)
            loss_sum += loss.item() * y.numel()  # the reference's AverageMeter: a sync per step
            correct += (logits.argmax(1) == y).sum().item()
            seen += y.numel()
        if cuda:
            torch.cuda.synchronize()
        t_train = time.perf_counter() - t0
        model.eval()
        hits = total = 0
        with torch.no_grad(), torch.autocast(**autocast):
            for b, (x, y, _) in enumerate(test_loader):
                if a.max_batches and b >= a.max_batches:
                    break
                x = x.to(dev, non_blocking=True).to(memory_format=fmt)
                hits += (model(x).argmax(1).cpu() == y).sum().item()
                total += y.numel()
        t_all = time.perf_counter() - t0
        e = dict(epoch=epoch + 1, train_images=seen, train_seconds=round(t_train, 3), seconds=round(t_all, 3),
                 train_img_per_s=round(seen / t_train, 1), end_to_end_img_per_s=round(seen / t_all, 1),
                 train_loss=round(loss_sum / max(seen, 1), 4), train_top1=round(100 * correct / max(seen, 1), 2),
                 val_top1=round(100 * hits / max(total, 1), 2))
        epochs.append(e)
        print("reference epoch %d: %d images, train %.1f s (%.0f img/s), train+eval %.1f s (%.0f img/s), val top1 %.2f%%"
              % (e["epoch"], seen, t_train, e["train_img_per_s"], t_all, e["end_to_end_img_per_s"], e["val_top1"]),
              flush=True)
    result = dict(script="bench/cuda/reference_train_loop.py", torch=torch.__version__, device=str(dev),
                  gpu=torch.cuda.get_device_name(dev) if cuda else None, arch=a.arch, precision=a.precision,
                  channels_last=not a.contiguous, inst_parameters=inst, workers=a.workers,
                  batch_size=a.batch_size, train_size=len(train), test_size=len(test), epochs=epochs)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Side by side: dp-engine's loader vs torchvision+PIL on the same JPEGs, same work.

Work per image: decode JPEG -> RandomResizedCrop(224, scale (0.08, 1), ratio (3/4, 4/3),
bilinear) -> horizontal flip (p 0.5) -> to float [0, 1] -> normalise (ImageNet mean/std), CHW.
Files are read into memory first on both sides, so neither measures the disk.

    /usr/bin/python3 bench/data/data_side_by_side.py BUILD_DIR [TAR] [THREADS]

BUILD_DIR holds bench/data/data_pipeline; TAR defaults to ../shared/data/imagenet-samples-500.tar.
torchvision runs in one process with torch.set_num_threads(1) (per-core figure) and, for the
all-core figure, in a multiprocessing pool of THREADS workers, as a DataLoader would.
"""
import io
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time

import torch
from PIL import Image
from torchvision import transforms

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TRANSFORM = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def work(blobs):
    torch.set_num_threads(1)
    for blob in blobs:
        TRANSFORM(Image.open(io.BytesIO(blob)).convert("RGB"))
    return len(blobs)


def main():
    build = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    tar = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "..", "..", "shared", "data",
                                                             "imagenet-samples-500.tar")
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tar", "-xf", tar, "-C", tmp], check=True)
        folder = os.path.join(tmp, "images")
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpeg", ".jpg")))
        blobs = [open(os.path.join(folder, n), "rb").read() for n in names]

        work(blobs[:20])  # warm-up
        start = time.perf_counter()
        n = work(blobs) + work(blobs)
        tv_single = n / (time.perf_counter() - start)
        with mp.Pool(threads) as pool:
            chunks = [blobs[i::threads] for i in range(threads)]
            pool.map(work, chunks)
            start = time.perf_counter()
            n = sum(pool.map(work, chunks)) + sum(pool.map(work, chunks))
            tv_all = n / (time.perf_counter() - start)

        out = subprocess.run([os.path.join(build, "bench", "data", "data_pipeline"), folder, "1", str(threads)],
                             check=True, capture_output=True, text=True).stdout
        dp = {}
        for line in out.splitlines():
            fields = dict(kv.split("=") for kv in line.split()[1:])
            dp[int(fields["threads"])] = float(fields["img/s"])
    print(f"images: {len(blobs)} ({tar}), threads for 'all': {threads}")
    print(f"{'':24}{'1 thread img/s':>16}{'all img/s':>12}{'img/s/core':>12}")
    print(f"{'torchvision+PIL':24}{tv_single:16.1f}{tv_all:12.1f}{tv_all / threads:12.1f}")
    print(f"{'dp-engine':24}{dp[1]:16.1f}{dp[threads]:12.1f}{dp[threads] / threads:12.1f}")
    print(f"ratio dp/torchvision per core: single {dp[1] / tv_single:.2f}x, all {dp[threads] / tv_all:.2f}x")


if __name__ == "__main__":
    main()

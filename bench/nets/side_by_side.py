#!/usr/bin/python3
"""One CPU training step (forward, cross-entropy, backward, SGD update), dp-engine vs PyTorch.

Runs the C++ benchmark (bench_nets_train_step) and the same step in Debian's PyTorch with the
same thread count in the same run, then prints img/s for both and the ratio dp/PyTorch.

    /usr/bin/python3 bench/nets/side_by_side.py --binary build/bench/nets/bench_nets_train_step \
        [--threads 2] [--iters 3] [--warmup 1] [--repeats 2] [--only wrn-16-4|resnet18]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from make_net_goldens import WideResNet  # noqa: E402  (the reference WRN, re-implemented)

CONFIGS = [("wrn-16-4", 128, 32, 10), ("resnet18", 32, 224, 1000)]


def torch_step_seconds(name, batch, size, classes, warmup, iters):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=classes) if name == "resnet18" else WideResNet(16, 4, classes)
    model.train()
    x = torch.rand(batch, 3, size, size) * 2 - 1
    y = torch.arange(batch) % classes
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def dp_step_seconds(binary, name, batch, size, classes, warmup, iters, threads):
    env = dict(os.environ, DP_NUM_THREADS=str(threads))
    out = subprocess.run([binary, "--net", name, "--batch", str(batch), "--size", str(size), "--classes",
                          str(classes), "--warmup", str(warmup), "--iters", str(iters), "--threads", str(threads)],
                         check=True, capture_output=True, text=True, env=env).stdout
    m = re.search(r"step_ms=([0-9.]+)", out)
    if not m:
        raise RuntimeError("no RESULT line from " + binary + ":\n" + out)
    return float(m.group(1)) / 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--only", default=None)
    ap.add_argument("--repeats", type=int, default=2,
                    help="alternate dp and torch this many times and keep each one's best (shared machines are noisy)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads={args.threads} torch={torch.__version__} (median of {args.iters} steps after {args.warmup} warm-up, best of {args.repeats} alternating runs)")
    print(f"{'net':<10} {'batch':>5} {'size':>4} {'dp img/s':>10} {'torch img/s':>12} {'dp/torch':>9}")
    for name, batch, size, classes in CONFIGS:
        if args.only and name != args.only:
            continue
        t_dp = t_pt = float("inf")
        for _ in range(max(args.repeats, 1)):
            t_dp = min(t_dp, dp_step_seconds(args.binary, name, batch, size, classes, args.warmup, args.iters,
                                             args.threads))
            t_pt = min(t_pt, torch_step_seconds(name, batch, size, classes, args.warmup, args.iters))
        print(f"{name:<10} {batch:>5} {size:>4} {batch / t_dp:>10.2f} {batch / t_pt:>12.2f} {t_pt / t_dp:>9.3f}",
              flush=True)


if __name__ == "__main__":
    main()

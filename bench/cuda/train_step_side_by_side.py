#!/usr/bin/env python3
"""One GPU training step (forward, cross-entropy, backward, SGD with momentum and weight decay),
dp-engine vs PyTorch eager on the same GPU in the same run, synthetic data on the device.

    python3 bench/cuda/train_step_side_by_side.py --binary PATH/bench_train_step_gpu [--iters 10]

Cases: WRN-28-10 (batch 128, 32x32, 100 classes) and ResNet-18 (batch 256, 224x224, 1000
classes). Both run fp32 with TF32 allowed (dp-engine's default), then bf16 (PyTorch autocast,
dp-engine --precision bf16: bf16 activations, float32 master weights) twice: with NCHW
activations, and with channels-last (NHWC) activations on both sides (PyTorch:
model and input .to(memory_format=torch.channels_last)). Prints img/s for both and the ratio
dp/PyTorch.
"""
import argparse
import os
import re
import subprocess
import sys

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from make_net_goldens import WideResNet  # noqa: E402  (the reference WRN, re-implemented)

CASES = [("wrn-28-10", 128, 32, 100), ("resnet18", 256, 224, 1000)]


ROWS = [("tf32", "contiguous"), ("bf16", "contiguous"), ("bf16", "channels_last")]


def torch_ms(name, batch, size, classes, precision, layout, warmup, iters):
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    model = (torchvision.models.resnet18(num_classes=classes) if name == "resnet18"
             else WideResNet(28, 10, classes)).cuda().train()
    x = torch.rand(batch, 3, size, size, device="cuda") * 2 - 1
    y = torch.arange(batch, device="cuda") % classes
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    del model, opt
    torch.cuda.empty_cache()
    return times[len(times) // 2]


def dp_ms(binary, name, batch, size, classes, precision, layout, warmup, iters):
    out = subprocess.run([binary, "--net", name, "--batch", str(batch), "--size", str(size), "--classes",
                          str(classes), "--warmup", str(warmup), "--iters", str(iters),
                          "--precision", "bf16" if precision == "bf16" else "fp32", "--memory-format", layout],
                         capture_output=True, text=True, timeout=240)
    m = re.search(r"step_ms=([0-9.]+)", out.stdout)
    if out.returncode != 0 or not m:
        print(f"dp {name} {precision} {layout}: failed (rc {out.returncode}): {out.stdout[-500:]} {out.stderr[-1500:]}")
        return None
    print("  " + out.stdout.strip().splitlines()[-1])
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    print(f"GPU: {torch.cuda.get_device_name()}  torch {torch.__version__}  "
          f"(median of {args.iters} steps after {args.warmup} warm-up, CUDA events)")
    rows = []
    for name, batch, size, classes in CASES:
        for precision, layout in ROWS:
            d = dp_ms(args.binary, name, batch, size, classes, precision, layout, args.warmup, args.iters)
            t = torch_ms(name, batch, size, classes, precision, layout, args.warmup, args.iters)
            rows.append((name, batch, precision, layout, d, t))
    print(f"\n{'net':<10} {'batch':>5} {'precision':>9} {'layout':>13} {'dp img/s':>10} {'torch img/s':>12} "
          f"{'dp/torch':>9}")
    for name, batch, precision, layout, d, t in rows:
        dp_ips = f"{batch * 1e3 / d:10.1f}" if d else f"{'n/a':>10}"
        ratio = f"{t / d:9.3f}" if d else f"{'-':>9}"
        print(f"{name:<10} {batch:>5} {precision:>9} {layout:>13} {dp_ips} {batch * 1e3 / t:12.1f} {ratio}")


if __name__ == "__main__":
    main()

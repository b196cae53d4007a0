#!/usr/bin/env python3
"""One GPU training step (forward, cross-entropy, backward, SGD with momentum and weight decay),
dp-engine (dp-train's TrainStep, eager and replayed as a CUDA graph) vs PyTorch (eager,
torch.compile, and the whole step captured with torch.cuda.graph) on the same GPU in the same
run, synthetic data on the device.

    python3 bench/cuda/train_step_side_by_side.py --binary PATH/bench_train_step_gpu [--iters 10]
        [--torch-modes eager,compile,graph] [--rows tf32:contiguous,bf16:channels_last]

Cases: WRN-28-10 (batch 128, 32x32, 100 classes) and ResNet-18 (batch 256, 224x224, 1000
classes). Both run fp32 with TF32 allowed (dp-engine's default), then bf16 (PyTorch autocast,
dp-engine --precision bf16: bf16 activations, float32 master weights) twice: with NCHW
activations, and with channels-last (NHWC) activations on both sides (PyTorch:
model and input .to(memory_format=torch.channels_last)). Prints img/s and peak GPU memory for each
and the ratios of dp-engine (graphs on) to each PyTorch mode.
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


def torch_ms(name, batch, size, classes, precision, layout, warmup, iters, mode):
    """Median step ms and peak MiB of PyTorch in `mode`: eager, compile (torch.compile of the
    model, default mode) or graph (the whole step, optimiser included, captured once with
    torch.cuda.graph after warm-up on a side stream, as PyTorch's CUDA-graph docs show)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = (torchvision.models.resnet18(num_classes=classes) if name == "resnet18"
             else WideResNet(28, 10, classes)).cuda().train()
    x = torch.rand(batch, 3, size, size, device="cuda") * 2 - 1
    y = torch.arange(batch, device="cuda") % classes
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    forward = torch.compile(model) if mode == "compile" else model

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(forward(x), y)
        loss.backward()
        opt.step()

    run = step
    if mode == "graph":
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(max(warmup, 3)):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        run = graph.replay
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    peak = torch.cuda.max_memory_allocated() / 2**20
    del model, opt, forward, run
    torch.cuda.empty_cache()
    return times[len(times) // 2], peak


def dp_ms(binary, name, batch, size, classes, precision, layout, warmup, iters, graphs):
    out = subprocess.run([binary, "--net", name, "--batch", str(batch), "--size", str(size), "--classes",
                          str(classes), "--warmup", str(warmup), "--iters", str(iters),
                          "--precision", "bf16" if precision == "bf16" else "fp32", "--memory-format", layout,
                          "--cuda-graphs", "on" if graphs else "off"],
                         capture_output=True, text=True, timeout=240)
    m = re.search(r"step_ms=([0-9.]+).*peak_mib=([0-9.]+)", out.stdout)
    if out.returncode != 0 or not m:
        print(f"dp {name} {precision} {layout} graphs={graphs}: failed (rc {out.returncode}): "
              f"{out.stdout[-500:]} {out.stderr[-1500:]}")
        return None, None
    print("  " + out.stdout.strip().splitlines()[-1])
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--torch-modes", default="eager,compile,graph")
    ap.add_argument("--rows", default=",".join(f"{p}:{l}" for p, l in ROWS),
                    help="precision:layout pairs, e.g. bf16:channels_last")
    ap.add_argument("--nets", default=",".join(c[0] for c in CASES))
    args = ap.parse_args()
    modes = [m for m in args.torch_modes.split(",") if m]
    rows_wanted = [tuple(r.split(":")) for r in args.rows.split(",") if r]
    print(f"GPU: {torch.cuda.get_device_name()}  torch {torch.__version__}  "
          f"(median of {args.iters} steps after {args.warmup} warm-up, CUDA events)")
    table = []
    for name, batch, size, classes in CASES:
        if name not in args.nets.split(","):
            continue
        for precision, layout in rows_wanted:
            r = {"net": name, "batch": batch, "precision": precision, "layout": layout}
            for graphs in (False, True):
                r[f"dp_{'graph' if graphs else 'eager'}"] = dp_ms(args.binary, name, batch, size, classes,
                                                                  precision, layout, args.warmup, args.iters, graphs)
            for mode in modes:
                try:
                    r[f"torch_{mode}"] = torch_ms(name, batch, size, classes, precision, layout, args.warmup,
                                                  args.iters, mode)
                except Exception as e:  # a PyTorch mode that fails here is reported, not fatal
                    print(f"torch {mode} {name} {precision} {layout}: failed: {e}")
                    r[f"torch_{mode}"] = (None, None)
            table.append(r)
    cols = ["dp_eager", "dp_graph"] + [f"torch_{m}" for m in modes]
    print("\nimg/s (peak MiB); ratios are dp_graph / each PyTorch mode")
    print(f"{'net':<10} {'batch':>5} {'prec':>5} {'layout':>13} " + " ".join(f"{c:>18}" for c in cols) + "  ratios")
    for r in table:
        cells = []
        for c in cols:
            ms, peak = r[c]
            cells.append(f"{r['batch'] * 1e3 / ms:9.1f} ({peak:6.0f})" if ms else f"{'n/a':>18}")
        d = r["dp_graph"][0]
        ratios = " ".join(f"{m}={r['torch_' + m][0] / d:.3f}" for m in modes if d and r["torch_" + m][0])
        print(f"{r['net']:<10} {r['batch']:>5} {r['precision']:>5} {r['layout']:>13} " + " ".join(cells) + "  " + ratios)


if __name__ == "__main__":
    main()

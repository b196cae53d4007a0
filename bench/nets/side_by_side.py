#!/usr/bin/env python3
"""dp-engine's CPU training and evaluation steps side by side with PyTorch, in one run.

For each net (WRN-16-4 at batch 128, 32 px; ResNet-18 at batch 32, 224 px), each step (train:
forward, cross-entropy, backward, SGD update; eval: eval-mode forward without autograd) and each
thread count, prints img/s of dp and of every PyTorch given (one row each), the ratio, dp's
GFLOP/s and its share of the machine's sgemm peak (measured in the same run through the BLAS dp
links, with as many BLAS threads), and the peak resident memory of both processes.

    python3 bench/nets/side_by_side.py --binary build/bench/nets/bench_nets_train_step \\
        [--torch /work/venv-torch/bin/python3] [--torch /usr/bin/python3] \\
        [--threads 1,2] [--iters 3] [--warmup 1] [--repeats 2] [--only wrn-16-4|resnet18] [--modes train,eval]

The driver itself needs no PyTorch: every measurement runs in its own process (dp's binary, or
this script as --torch-worker under each given interpreter), so peak memory is per process, and
dp and PyTorch alternate --repeats times (each keeps its best: shared machines are noisy).
A --torch interpreter without torch is skipped with a note. When OPENBLAS_CORETYPE is set (some
machines set it for old OpenBLAS builds), the whole table is printed twice: as set, and with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from the measured processes' environment.
GFLOP/s counts 2 flops per multiply-add of the convolutions and the classifier, the train step
as 3x the forward (forward, data gradient, weight gradient); Winograd layers do fewer
multiplications than counted, so dp's figure is an effective rate.
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = [("wrn-16-4", 128, 32, 10), ("resnet18", 32, 224, 1000)]
HERE = os.path.dirname(os.path.abspath(__file__))


# ---- multiply-adds of one image's forward pass, from the architectures' shapes ----------------

def conv_macs(c, k, r, out_hw):
    return c * k * r * r * out_hw * out_hw


def resnet18_macs(size, classes):
    h = (size + 2 * 3 - 7) // 2 + 1          # conv1 7x7 stride 2
    macs = conv_macs(3, 64, 7, h)
    h = (h + 2 - 3) // 2 + 1                 # max pool 3x3 stride 2
    c = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            s = stride if block == 0 else 1
            out = (h + 2 - 3) // s + 1
            macs += conv_macs(c, width, 3, out) + conv_macs(width, width, 3, out)
            if s != 1 or c != width:
                macs += conv_macs(c, width, 1, out)
            c, h = width, out
    return macs + 512 * classes


def wrn_macs(depth, widen, size, classes):
    n = (depth - 4) // 6
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    h = size
    macs = conv_macs(3, widths[0], 3, h)
    c = widths[0]
    for group, stride in ((1, 1), (2, 2), (3, 2)):
        width = widths[group]
        for block in range(n):
            s = stride if block == 0 else 1
            out = (h + 2 - 3) // s + 1
            macs += conv_macs(c, width, 3, out) + conv_macs(width, width, 3, out)
            if c != width:
                macs += conv_macs(c, width, 1, out)
            c, h = width, out
    return macs + widths[3] * classes


def forward_flops_per_image(name, size, classes):
    if name == "resnet18":
        return 2 * resnet18_macs(size, classes)
    m = re.fullmatch(r"wrn-(\d+)-(\d+)", name)
    return 2 * wrn_macs(int(m.group(1)), int(m.group(2)), size, classes)


# ---- the PyTorch side (runs under each --torch interpreter) -----------------------------------

def torch_worker(spec):
    import torch
    import torch.nn.functional as F
    import torchvision

    sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
    from make_net_goldens import WideResNet  # the reference WRN, re-implemented

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    name, batch, size, classes = spec["net"], spec["batch"], spec["size"], spec["classes"]
    if name == "resnet18":
        model = torchvision.models.resnet18(num_classes=classes)
    else:
        depth, widen = (int(v) for v in re.fullmatch(r"wrn-(\d+)-(\d+)", name).groups())
        model = WideResNet(depth, widen, classes)
    x = torch.rand(batch, 3, size, size) * 2 - 1
    y = torch.arange(batch) % classes
    train = spec["mode"] == "train"
    model.train(train)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step():
        if train:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
        else:
            with torch.inference_mode():
                model(x)

    rss_before = resident_mib()
    for _ in range(spec["warmup"]):
        step()
    times = []
    cpu0 = time.process_time()
    for _ in range(spec["iters"]):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    cpu_s = (time.process_time() - cpu0) / spec["iters"]
    print(json.dumps({"step_s": statistics.median(times), "cpu_s": cpu_s, "rss_before_mib": rss_before,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "version": torch.__version__}))


def resident_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


# ---- the driver ---------------------------------------------------------------------------------

def run_dp(args, env, name, batch, size, classes, mode, threads):
    out = subprocess.run([args.binary, "--net", name, "--batch", str(batch), "--size", str(size), "--classes",
                          str(classes), "--mode", mode, "--warmup", str(args.warmup), "--iters", str(args.iters),
                          "--threads", str(threads)],
                         check=True, capture_output=True, text=True, env=dict(env, DP_NUM_THREADS=str(threads))).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[-1]))
    if "step_ms" not in fields:
        raise RuntimeError("no RESULT line from " + args.binary + ":\n" + out)
    return {"step_s": float(fields["step_ms"]) / 1e3, "cpu_s": float(fields["cpu_s"]), "peak_mib": float(fields["peak_mib"]),
            "rss_before_mib": float(fields["rss_before_mib"])}


def run_torch(args, env, python, name, batch, size, classes, mode, threads):
    spec = dict(net=name, batch=batch, size=size, classes=classes, mode=mode, threads=threads,
                warmup=args.warmup, iters=args.iters)
    # One thread count for every pool PyTorch may start (OpenMP, MKL) besides set_num_threads.
    env = dict(env, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = subprocess.run([python, os.path.abspath(__file__), "--torch-worker", json.dumps(spec)],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def sgemm_peak(args, env, threads):
    out = subprocess.run([args.binary, "--sgemm", str(args.sgemm_n), "--threads", str(threads)], check=True,
                         capture_output=True, text=True, env=dict(env, DP_NUM_THREADS=str(threads))).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out))
    return float(fields["gflops"]), fields.get("core", "?")


def torch_version(python, env):
    r = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True,
                       env=env)
    return r.stdout.strip() if r.returncode == 0 else None


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return re.search(r"Model name:\s*(.*)", out).group(1).strip()
    except Exception:  # noqa: BLE001  (lscpu missing: the model is only informative)
        return "unknown"


def table(args, env, torches):
    threads_list = [int(t) for t in args.threads.split(",")]
    peaks = {}
    for threads in threads_list:
        peaks[threads] = sgemm_peak(args, env, threads)
        print(f"sgemm {args.sgemm_n}^3 through OpenBLAS ({peaks[threads][1]}), {threads} thread(s): "
              f"{peaks[threads][0]:.1f} GFLOP/s", flush=True)
    print(f"{'net':<9} {'step':<5} {'thr':>3} {'dp img/s':>9} {'torch':<14} {'img/s':>8} {'dp/torch':>8} "
          f"{'dp GFLOP/s':>10} {'% peak':>6} {'dp peak MiB':>11} {'torch peak MiB':>14} {'CPU-s dp/torch':>14}",
          flush=True)
    for name, batch, size, classes in CONFIGS:
        if args.only and name != args.only:
            continue
        fwd = forward_flops_per_image(name, size, classes)
        for mode in args.modes.split(","):
            flops = fwd * (3 if mode == "train" else 1)
            for threads in threads_list:
                dp_best, torch_best = None, {label: None for label, _ in torches}
                for _ in range(max(args.repeats, 1)):
                    r = run_dp(args, env, name, batch, size, classes, mode, threads)
                    if dp_best is None or r["step_s"] < dp_best["step_s"]:
                        dp_best = dict(r, peak_mib=max(r["peak_mib"], (dp_best or r)["peak_mib"]))
                    for label, python in torches:
                        t = run_torch(args, env, python, name, batch, size, classes, mode, threads)
                        prev = torch_best[label]
                        if prev is None or t["step_s"] < prev["step_s"]:
                            torch_best[label] = dict(t, peak_mib=max(t["peak_mib"], (prev or t)["peak_mib"]))
                dp_ips = batch / dp_best["step_s"]
                gflops = flops * batch / dp_best["step_s"] / 1e9
                share = 100.0 * gflops / peaks[threads][0]
                rows = list(torch_best.items()) or [("(none)", None)]
                for label, t in rows:
                    t_ips = batch / t["step_s"] if t else float("nan")
                    ratio = dp_ips / t_ips if t else float("nan")
                    t_peak = f"{t['peak_mib']:.0f}" if t else "-"
                    cpu = f"{dp_best['cpu_s']:.2f}/{t['cpu_s']:.2f}" if t else "-"
                    print(f"{name:<9} {mode:<5} {threads:>3} {dp_ips:>9.2f} {label:<14} {t_ips:>8.2f} {ratio:>8.2f} "
                          f"{gflops:>10.1f} {share:>5.0f}% {dp_best['peak_mib']:>11.0f} {t_peak:>14} {cpu:>14}",
                          flush=True)
    print("peak MiB: each process's peak resident set (VmHWM / ru_maxrss), its libraries (and PyTorch's interpreter) "
          "included. CPU-s: process CPU seconds per step, all threads (steadier than img/s on a shared machine; "
          "PyTorch's OpenMP threads also count the time they spin-wait).")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--torch-worker":
        torch_worker(json.loads(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="build/bench/nets/bench_nets_train_step")
    ap.add_argument("--torch", action="append", default=None,
                    help="a Python interpreter with PyTorch (repeatable); default: /work/venv-torch/bin/python3 "
                         "(PyPI's, bench/README.md) and /usr/bin/python3 (Debian's), those that have torch")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--modes", default="train,eval")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3, help="timed steps per process (the median is kept)")
    ap.add_argument("--repeats", type=int, default=2, help="alternating dp/PyTorch processes per row (best kept)")
    ap.add_argument("--sgemm-n", type=int, default=4096)
    ap.add_argument("--only", default=None)
    args = ap.parse_args()

    env = dict(os.environ)
    candidates = args.torch or ["/work/venv-torch/bin/python3", "/usr/bin/python3"]
    torches = []
    for python in candidates:
        version = torch_version(python, env) if os.path.exists(python) else None
        if version is None:
            print(f"note: {python} has no PyTorch, skipped", flush=True)
            continue
        source = "PyPI" if "venv" in python else ("Debian" if python.startswith("/usr/bin") else python)
        torches.append((f"{version.split('+')[0]} {source}"[:14], python))
    print(f"CPU: {cpu_model()}; median of {args.iters} steps after {args.warmup} warm-up, "
          f"best of {args.repeats} alternating processes", flush=True)
    coretype = {k: env[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in env}
    if coretype:
        print(f"\n== with {coretype} as set in the environment", flush=True)
        table(args, env, torches)
        print("\n== with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for the measured processes", flush=True)
        table(args, {k: v for k, v in env.items() if k not in coretype}, torches)
    else:
        table(args, env, torches)


if __name__ == "__main__":
    main()

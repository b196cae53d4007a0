#!/usr/bin/python3
"""Writes tests/train/golden/dataparam_trajectories.bin: 50-iteration trajectories of data
parameters (docs/method.md §1-§2) computed with PyTorch the way the reference
(apple/ml-data-parameters) does it: gather the log parameters for the batch, exp, divide the
logits, mean cross-entropy, add 0.5*wd*sum(theta_minibatch**2) per learnt kind, autograd to
dense gradients, then a per-row lazy momentum SGD (present = grad != 0, first step buf <- g) and
the clamp of every entry to [log(1/20), log(20)]. Everything is float32, as in the reference.

The logits are random (no model). Special rows:
  * every 5th iteration (t % 5 == 3) row 0 has label 0, logits [3000, 0, ..., 0] and no other
    row has label 0: its gradient underflows to exactly 0 (absent row) unless wd > 0;
  * when t % 7 == 2, rows 1 and 2 share a dataset index (duplicate instance in one batch).

Format (little-endian): b"DPGOLD01", u32 entry count, then per entry: u32 name length, name,
u8 dtype (0 float32, 1 float64, 2 int64), u32 ndim, i64 dims[ndim], raw data.
Run: /usr/bin/python3 scripts/make_dataparam_goldens.py  (needs python3-torch, python3-numpy)
"""
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

T, B, C, N = 50, 16, 10, 64

# name: (learn_class, learn_inst, init_class, init_inst, lr_class, lr_inst, wd_class, wd_inst, skip_clamp)
CASES = {
    "joint_clamp": (1, 1, 1.0, 0.001, 0.1, 0.8, 1e-4, 1e-8, 0),
    "joint_nowd": (1, 1, 1.0, 1.0, 0.1, 0.2, 0.0, 0.0, 0),
    "joint_noclamp": (1, 1, 1.0, 0.001, 0.1, 0.8, 0.0, 0.0, 1),
    "inst_only": (0, 1, 1.0, 1.0, 0.1, 0.2, 0.0, 0.0, 0),
    "inst_only_wd": (0, 1, 1.0, 1.0, 0.1, 0.2, 0.0, 1e-3, 0),
    "inst_highlr": (0, 1, 1.0, 1.0, 0.1, 5.0,  # rows reach the upper clamp
    0.0, 0.0, 0),
    "class_only": (1, 0, 1.0, 1.0, 0.1, 0.1, 0.0, 0.0, 0),
    "class_only_wd": (1, 0, 1.0, 1.0, 0.1, 0.1, 1e-4, 0.0, 0),
}


def make_inputs():
    g = torch.Generator().manual_seed(1234)
    logits = (torch.randn(T, B, C, generator=g) * 3.0).float()
    labels = torch.randint(0, C, (T, B), generator=g)
    indices = torch.stack([torch.randperm(N, generator=g)[:B] for _ in range(T)])
    for t in range(T):
        if t % 5 == 3:
            labels[t, 0] = 0
            labels[t, 1:] = torch.randint(1, C, (B - 1,), generator=g)
            logits[t, 0] = 0.0
            logits[t, 0, 0] = 3000.0
        if t % 7 == 2:
            indices[t, 2] = indices[t, 1]
    return logits, labels, indices


def sparse_sgd_step(theta, buf, grad, lr, first):
    """The reference's lazy momentum: rows whose float32 gradient is exactly 0 are absent."""
    mask = grad != 0
    if first:
        buf[mask] = grad[mask]
    else:
        buf[mask] = 0.9 * buf[mask] + grad[mask]
    theta[mask] = theta[mask] - lr * buf[mask]


def run_case(cfg, logits, labels, indices):
    lc, li, ic, ii, lrc, lri, wdc, wdi, skip = cfg
    theta_c = torch.tensor(np.ones(C) * np.log(ic), dtype=torch.float32)
    theta_i = torch.tensor(np.ones(N) * np.log(ii), dtype=torch.float32)
    buf_c = torch.zeros(C)
    buf_i = torch.zeros(N)
    out = {k: [] for k in ("loss", "theta_class", "buf_class", "theta_inst", "buf_inst", "sigma")}
    lo, hi = float(np.log(1 / 20)), float(np.log(20))
    for t in range(T):
        tc = theta_c.clone().requires_grad_(True)
        ti = theta_i.clone().requires_grad_(True)
        y, idx = labels[t], indices[t]
        cmb, imb = tc[y], ti[idx]
        if lc and li:
            sigma = torch.exp(cmb) + torch.exp(imb)
        elif lc:
            sigma = torch.exp(cmb)
        else:
            sigma = torch.exp(imb)
        z = logits[t].clone().requires_grad_(True)
        loss = F.cross_entropy(z / sigma.unsqueeze(1), y, reduction="none").mean()
        if lc and wdc > 0:
            loss = loss + 0.5 * wdc * (cmb ** 2).sum()
        if li and wdi > 0:
            loss = loss + 0.5 * wdi * (imb ** 2).sum()
        loss.backward()
        with torch.no_grad():
            if lc:
                sparse_sgd_step(theta_c, buf_c, tc.grad, lrc, t == 0)
            if li:
                sparse_sgd_step(theta_i, buf_i, ti.grad, lri, t == 0)
            if not skip:
                if lc:
                    theta_c.clamp_(min=lo, max=hi)
                if li:
                    theta_i.clamp_(min=lo, max=hi)
        out["loss"].append(float(loss.item()))
        out["sigma"].append(sigma.detach().clone())
        out["theta_class"].append(theta_c.clone())
        out["buf_class"].append(buf_c.clone())
        out["theta_inst"].append(theta_i.clone())
        out["buf_inst"].append(buf_i.clone())
    return {
        "loss": np.array(out["loss"], dtype=np.float64),
        **{k: torch.stack(out[k]).numpy().astype(np.float32) for k in out if k != "loss"},
    }


def write(path, entries):
    with open(path, "wb") as f:
        f.write(b"DPGOLD01")
        f.write(struct.pack("<I", len(entries)))
        for name, arr in entries:
            arr = np.ascontiguousarray(arr)
            code = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.int64): 2}[arr.dtype]
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb + struct.pack("<BI", code, arr.ndim))
            f.write(struct.pack("<%dq" % arr.ndim, *arr.shape))
            f.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())


def main():
    torch.set_num_threads(1)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    path = os.path.join(root, "tests", "train", "golden", "dataparam_trajectories.bin")
    logits, labels, indices = make_inputs()
    entries = [("logits", logits.numpy()), ("labels", labels.numpy().astype(np.int64)),
               ("indices", indices.numpy().astype(np.int64))]
    for name, cfg in CASES.items():
        res = run_case(cfg, logits, labels, indices)
        entries.append((f"{name}/config", np.array(cfg, dtype=np.float64)))
        for k, v in res.items():
            entries.append((f"{name}/{k}", v))
    write(path, entries)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, torch {torch.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()

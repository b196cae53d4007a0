#!/usr/bin/env python3
"""Summarises what scripts/gpu_reproduce.sh collected (standard library only):

    gpu_reproduce_summary.py FILES_DIR --data PACK --epochs N --commit C --json OUT.json --markdown OUT.md

Per dp-train run: last and best test top-1 (from metrics.jsonl, and dp-eval's of checkpoint.h5 /
best.h5), σ ROC-AUC for the corrupted samples (dp-inspect), img/s (training only, from each
epoch's seconds; end to end per epoch, from the wall clock between consecutive "epoch k/N done"
lines, so it includes loading, evaluation and checkpoints; whole run including start-up), GPU
utilisation (nvidia-smi samples) over the run and over its steady epochs. For the reference:
its per-epoch img/s and utilisation. Then the issue's goals, each marked met or not.
"""
import argparse
import json
import os
import re
import statistics


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_phases(path):
    phases = {}
    try:
        with open(path) as f:
            for line in f:
                name, what, t = line.split()
                phases.setdefault(name, {})[what] = float(t)
    except OSError:
        pass
    return phases


def read_samples(path):
    samples = []
    try:
        with open(path) as f:
            for line in f:
                parts = [p.strip() for p in line.split(",")]
                try:
                    samples.append((float(parts[0]), float(parts[1]), float(parts[2])))
                except (IndexError, ValueError):
                    continue
    except OSError:
        pass
    return samples


def busy(samples, t0, t1):
    values = [u for t, u, _ in samples if t0 <= t <= t1]
    if not values:
        return None
    return {"mean_percent": round(statistics.fmean(values), 1), "samples": len(values),
            "share_of_samples_at_least_90": round(sum(v >= 90 for v in values) / len(values), 3),
            "peak_memory_mib": max(m for t, _, m in samples if t0 <= t <= t1)}


def epoch_done_times(log_path):
    times = []
    try:
        with open(log_path) as f:
            for line in f:
                stamp, _, text = line.partition(" ")
                if re.match(r"epoch \d+/\d+ done", text):
                    times.append(float(stamp))
    except OSError:
        pass
    return times


def run_summary(files, run, train_images, phases, samples):
    metrics = []
    try:
        with open(os.path.join(files, "metrics_%s.jsonl" % run)) as f:
            metrics = [json.loads(l) for l in f if l.strip()]
    except (OSError, ValueError):
        pass
    epochs = [m for m in metrics if m.get("type") == "epoch"]
    r = {"epochs_done": len(epochs)}
    if epochs:
        best = max(epochs, key=lambda m: m["val_top1"])
        r.update(last_epoch_top1=round(epochs[-1]["val_top1"], 2), best_epoch_top1=round(best["val_top1"], 2),
                 best_epoch=best["epoch"], last_epoch_train_top1=round(epochs[-1]["train_top1"], 2),
                 train_img_per_s_median=round(statistics.median(train_images / m["seconds"] for m in epochs), 1))
        if "sigma_inst_corrupted_mean" in epochs[-1]:
            r["sigma_inst_mean_corrupted"] = round(epochs[-1]["sigma_inst_corrupted_mean"], 4)
            r["sigma_inst_mean_clean"] = round(epochs[-1]["sigma_inst_clean_mean"], 4)
    for ck in ("checkpoint", "best"):
        e = read_json(os.path.join(files, "eval_%s_%s.json" % (run, ck)))
        if e:
            r["dp_eval_%s_top1" % ck] = round(e["top1"], 2)
    insp = read_json(os.path.join(files, "inspect_%s.json" % run))
    if insp and "roc_auc" in insp:
        r["sigma_roc_auc"] = round(insp["roc_auc"], 4)
        r.update({k: round(v, 4) for k, v in insp.items() if k.startswith("precision_at_")})
    ph = phases.get("train_" + run, {})
    if "begin" in ph and "end" in ph:
        wall = ph["end"] - ph["begin"]
        r["wall_seconds"] = round(wall, 1)
        if epochs:
            r["end_to_end_img_per_s_whole_run"] = round(train_images * len(epochs) / wall, 1)
        r["gpu_busy_whole_run"] = busy(samples, ph["begin"], ph["end"])
    done = epoch_done_times(os.path.join(files, "train_%s.log" % run))
    if len(done) >= 2:
        deltas = [b - a for a, b in zip(done, done[1:])]
        r["epoch_wall_seconds_median"] = round(statistics.median(deltas), 2)
        r["end_to_end_img_per_s_steady"] = round(train_images / statistics.median(deltas), 1)
        r["gpu_busy_steady_epochs"] = busy(samples, done[0], done[-1])
    return r


def count_rows(path):
    with open(path) as f:
        return sum(1 for _ in f) - 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("files")
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--commit", default="unknown")
    p.add_argument("--json", required=True)
    p.add_argument("--markdown", required=True)
    a = p.parse_args()
    phases = read_phases(os.path.join(a.files, "phases.txt"))
    samples = read_samples(os.path.join(a.files, "gpu_samples.csv"))
    train_images = count_rows(os.path.join(a.data, "train.csv"))
    gpu = None
    try:
        with open(os.path.join(a.files, "nvidia-smi-L.txt")) as f:
            gpu = f.read().strip()
    except OSError:
        pass
    out = {"commit": a.commit, "gpu": gpu, "data": a.data, "train_images": train_images,
           "test_images": count_rows(os.path.join(a.data, "test.csv")), "epochs": a.epochs,
           "runs": {run: run_summary(a.files, run, train_images, phases, samples) for run in ("baseline", "inst")}}
    ref = read_json(os.path.join(a.files, "reference.json")) or {}
    out["reference"] = ref
    ph = phases.get("reference", {})
    if "begin" in ph and "end" in ph:
        ref["wall_seconds"] = round(ph["end"] - ph["begin"], 1)
        ref["gpu_busy_whole_run"] = busy(samples, ph["begin"], ph["end"])

    b, i = out["runs"]["baseline"], out["runs"]["inst"]
    goals = {}
    if "last_epoch_top1" in b and "last_epoch_top1" in i:
        d = round(i["last_epoch_top1"] - b["last_epoch_top1"], 2)
        goals["inst_minus_baseline_last_epoch_top1"] = {"value": d, "goal": ">= 5", "met": d >= 5}
    if "sigma_roc_auc" in i:
        goals["sigma_roc_auc"] = {"value": i["sigma_roc_auc"], "goal": ">= 0.95", "met": i["sigma_roc_auc"] >= 0.95}
    ref_epochs = ref.get("epochs") or []
    if ref_epochs and "end_to_end_img_per_s_steady" in i:
        ratio = round(i["end_to_end_img_per_s_steady"] / ref_epochs[-1]["end_to_end_img_per_s"], 3)
        goals["end_to_end_vs_reference"] = {"value": ratio, "goal": ">= 1.3", "met": ratio >= 1.3,
                                            "note": "dp-train inst, median epoch wall (train+eval+checkpoint) vs the "
                                                    "reference's last epoch (train+eval)"}
    busy_i = i.get("gpu_busy_steady_epochs")
    if busy_i:
        goals["gpu_busy_steady_epochs_inst"] = {"value": busy_i["mean_percent"], "goal": ">= 90",
                                                "met": busy_i["mean_percent"] >= 90}
    out["goals"] = goals
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)

    def g(d, k):
        v = d.get(k)
        if isinstance(v, dict):
            v = v.get("mean_percent")
        return "–" if v is None else v

    lines = ["GPU reproduce, commit %s, %s" % (a.commit, gpu or "no GPU"),
             "data %s: %d training, %d test images; %d epochs" % (a.data, train_images, out["test_images"], a.epochs),
             "",
             "| run | epochs | last top-1 | best top-1 (epoch) | dp-eval last / best | σ ROC-AUC | img/s train | img/s end-to-end (steady / whole) | GPU busy % (steady / whole) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run, r in out["runs"].items():
        lines.append("| %s | %s | %s | %s (%s) | %s / %s | %s | %s | %s / %s | %s / %s |" % (
            run, g(r, "epochs_done"), g(r, "last_epoch_top1"), g(r, "best_epoch_top1"), g(r, "best_epoch"),
            g(r, "dp_eval_checkpoint_top1"), g(r, "dp_eval_best_top1"), g(r, "sigma_roc_auc"),
            g(r, "train_img_per_s_median"), g(r, "end_to_end_img_per_s_steady"), g(r, "end_to_end_img_per_s_whole_run"),
            g(r, "gpu_busy_steady_epochs"), g(r, "gpu_busy_whole_run")))
    if ref_epochs:
        last = ref_epochs[-1]
        lines.append("| PyTorch reference (%s, %d workers), epoch %d of %d | – | – | – | – | – | %s | %s / – | – / %s |" % (
            ref.get("torch"), ref.get("workers", 0), last["epoch"], len(ref_epochs), last["train_img_per_s"],
            last["end_to_end_img_per_s"], g(ref, "gpu_busy_whole_run")))
    else:
        lines.append("| PyTorch reference | %s |" % ref.get("skipped", "no result"))
    lines.append("")
    for k, v in goals.items():
        lines.append("- %s: %s (goal %s): %s" % (k, v["value"], v["goal"], "met" if v["met"] else "NOT met"))
    with open(a.markdown, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Export round trip: dp-train a small ResNet-18, dp-export it to safetensors, load it into
torchvision's resnet18 with load_state_dict, and check that PyTorch's logits on dp-eval's inputs
equal dp-eval's logits within 1e-5 (relative to the largest logit).

    export_roundtrip.py DP_TRAIN DP_EXPORT DP_EVAL

Exits 77 (skipped) when PyTorch/torchvision are not importable."""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torchvision
except ImportError as err:
    print(f"SKIP: PyTorch/torchvision not available ({err}); install python3-torch python3-torchvision")
    sys.exit(77)


def load_safetensors(path):
    """safetensors.torch.load_file when the package is installed, else a reader of the format."""
    try:
        from safetensors.torch import load_file
        return load_file(path)
    except ImportError:
        pass
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=dtypes[e["dtype"]]).reshape(e["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def main():
    dp_train, dp_export, dp_eval = sys.argv[1:4]
    with tempfile.TemporaryDirectory(prefix="dp-export-") as tmp:
        sets = ["data.dataset=synthetic", "data.synthetic_train_size=16", "data.synthetic_test_size=8",
                "data.image_size=32", "model.arch=resnet18", "optim.batch_size=8", "run.epochs=1",
                "run.workers=1", f"run.output={tmp}/run"]
        config = os.path.join(tmp, "sections.toml")  # a config needs [data] and [model]
        with open(config, "w") as f:
            f.write("[data]\n[model]\n")
        cmd = [dp_train, config, "--quiet"]
        for s in sets:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True)
        ckpt = f"{tmp}/run/checkpoint.h5"
        subprocess.run([dp_export, ckpt, "--format", "safetensors", "-o", f"{tmp}/w.safetensors"], check=True)
        subprocess.run([dp_eval, ckpt, "--batch-size", "8", "--json", f"{tmp}/eval.json", "--dump", f"{tmp}/dump"],
                       check=True)

        model = torchvision.models.resnet18(num_classes=10)
        model.load_state_dict(load_safetensors(f"{tmp}/w.safetensors"))  # strict: names and shapes
        model.eval()
        inputs = torch.from_numpy(np.load(f"{tmp}/dump/inputs.npy"))
        ours = np.load(f"{tmp}/dump/logits.npy")
        with torch.no_grad():
            theirs = model(inputs).numpy()
        err = float(np.max(np.abs(ours - theirs)) / max(1e-12, float(np.max(np.abs(theirs)))))
        print(f"logits {ours.shape}: max |dp - torch| / max |torch| = {err:.3e}")
        if not err < 1e-5:
            print("FAIL: exported weights do not reproduce dp-eval's logits in PyTorch")
            sys.exit(1)
        print("OK")


if __name__ == "__main__":
    main()

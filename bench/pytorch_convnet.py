#!/usr/bin/env python3
"""PyTorch CPU reference for `acbench bench`: trains the convnet of
suites/models/convnet.acnet on real Fashion-MNIST and prints one JSON line
{"model":"convnet","activation":"relu","img_s":...,"peak_rss_mb":...}.

Model (keep in step with suites/models/convnet.acnet):
  Conv2d(1,32,3,padding=1)-ReLU-MaxPool2d(2)-Conv2d(32,64,3,padding=1)-ReLU-
  MaxPool2d(2)-Flatten-Linear(3136,128)-ReLU-Linear(128,10)
PyTorch default init, SGD lr 0.05, batch 64, cross-entropy, 2 threads.
Inputs: per-image standardisation as TF: (x - mean) / max(std, 1/sqrt(784)).

Run with the venv made by bench/setup-pytorch.sh.
"""
import argparse
import gzip
import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn


def read_idx(path):
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(root, limit):
    x = read_idx(os.path.join(root, "train-images-idx3-ubyte.gz"))[:limit]
    y = read_idx(os.path.join(root, "train-labels-idx1-ubyte.gz"))[:limit]
    x = x.reshape(len(x), -1).astype(np.float32)
    mean = x.mean(axis=1, keepdims=True)
    std = np.maximum(x.std(axis=1, keepdims=True), 1.0 / np.sqrt(x.shape[1]))
    x = ((x - mean) / std).astype(np.float32).reshape(-1, 1, 28, 28)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))


def convnet(classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        nn.Linear(128, classes),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=200, help="timed batches")
    ap.add_argument("--warmup", type=int, default=20, help="untimed warm-up batches")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=os.environ.get("ACBENCH_FASHION_MNIST",
                                                     "/usr/share/datasets/fashion-mnist"))
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    need = (args.batches + args.warmup) * args.batch_size
    x, y = load_fashion_mnist(args.data, min(need, 60000))
    n = len(x)

    model = convnet()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()

    def step(i):
        s = (i * args.batch_size) % (n - args.batch_size + 1)
        xb, yb = x[s:s + args.batch_size], y[s:s + args.batch_size]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    for i in range(args.warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.batches):
        loss = step(i)
    last_loss = float(loss)  # also syncs (no-op on CPU)
    dt = time.perf_counter() - t0

    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({
        "model": "convnet",
        "activation": "relu",
        "img_s": round(args.batches * args.batch_size / dt, 1),
        "peak_rss_mb": round(peak_kb / 1024.0, 1),
        "batches": args.batches,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "seconds": round(dt, 3),
        "final_loss": round(last_loss, 4),
        "torch": torch.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

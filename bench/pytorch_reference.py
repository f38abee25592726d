#!/usr/bin/env python3
"""PyTorch CPU reference of `acbench bench`: builds the network acbench built
and trains it the same way, then prints one JSON line.

acbench embeds this script in its binary and runs it with the python of the
venv made by bench/setup-pytorch.sh. It passes `--spec FILE`: the elaborated
network (acbench's IR, `acbench_dsl::ir::Network`, as serde writes it) and,
for every `act` node path, the bound activation's formula and the initial
values of its parameters. The model is built from that IR node by node, as
core/engine/src/model.rs builds it:

- conv: nn.Conv2d (groups, dilation, bias); asymmetric padding (TensorFlow's
  SAME with a stride) as F.pad before an unpadded conv.
- batch norm: eps as given; acbench's momentum m means
  `running = m * running + (1 - m) * batch` (TensorFlow's convention), which
  is PyTorch's momentum 1 - m. Running variance unbiased on both sides.
- LRN in TensorFlow's convention `x / (bias + alpha * sum x_j^2)^beta`:
  nn.LocalResponseNorm divides alpha by the window size, so it gets
  alpha * (2 * radius + 1).
- pooling: padded cells never win a max; average pooling counts them in the
  divisor or not as the IR says; floor output sizes.
- gap, flatten, linear, dropout (drop probability), residual (body +
  shortcut, the shortcut empty for the identity), concat, dense.
- activations by formula (see ACTIVATIONS), each in its natural PyTorch
  form (torch.maximum, F.leaky_relu, F.prelu), which may route gradients
  differently at ties and kinks than acbench's formula rules but costs what
  a PyTorch user's version costs; one parameter tensor per act node, per
  layer ([1]) or per channel ([C]), trainable ones as nn.Parameter;
  `positive` constraints clamped after every step as acbench.

Init: PyTorch's default, which acbench follows (conv and linear weights and
biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); batch norm 1, 0): the same
distribution, not the same numbers. Training: plain SGD, cross-entropy,
`--threads` intra-op threads and one inter-op thread. Data: the first
(warmup + batches) * batch_size Fashion-MNIST training images, standardised
per image as TensorFlow's per_image_standardization
((x - mean) / max(std, 1/sqrt(pixels))), then zero-padded (centred, extra
row/column at the bottom/right) to the network's input size, the grey
channel replicated to the network's channels (3 for the CIFAR-style paper
models); batch i is
images [s, s + batch) with s = (i * batch) mod (n - batch + 1), as acbench.

Output (stdout, one line): {"img_s", "peak_rss_mb", "params", "torch", ...};
img_s counts the timed batches only, peak_rss_mb is this process's peak RSS
(VmHWM; see peak_rss_mib), params the trainable scalars. `--probe` prints {"torch": VERSION}.

Exit status: 0 ok, 2 bad arguments, 3 torch (or numpy) cannot be imported,
4 the network, activation or data cannot be reproduced here.
"""
import argparse
import gzip
import json
import math
import os
import resource
import sys
import time

EXIT_IMPORT = 3
EXIT_UNSUPPORTED = 4


class Unsupported(Exception):
    """Something acbench asked for that this reference cannot build."""


def import_torch():
    """torch, numpy and torch.nn.functional, or exit 3 with a clear message."""
    try:
        import numpy  # noqa: F401
        import torch
        import torch.nn.functional  # noqa: F401
    except (ImportError, OSError) as e:
        print(
            f"pytorch_reference: torch could not be imported by {sys.executable}: "
            f"{type(e).__name__}: {e}\n"
            "Run bench/setup-pytorch.sh to create the CPU PyTorch venv "
            "(~/.cache/acbench/torch-venv), or point --python / $ACBENCH_TORCH_PYTHON "
            "at a python that has torch.",
            file=sys.stderr,
        )
        sys.exit(EXIT_IMPORT)
    return torch


# --- data ------------------------------------------------------------------

# The spellings acbench's IDX loader accepts (core/data/src/idx.rs), raw or .gz.
TRAIN_STEMS = {
    "images": ["train-images-idx3-ubyte", "train-images.idx3-ubyte"],
    "labels": ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"],
}


def find_idx(root, stems):
    for stem in stems:
        for name in (stem, stem + ".gz"):
            path = os.path.join(root, name)
            if os.path.isfile(path):
                return path
    raise Unsupported(f"no {stems[0]}[.gz] in {root}")


def read_idx(path):
    import numpy as np

    with open(path, "rb") as fh:
        magic = fh.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise Unsupported(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(dims):
        raise Unsupported(f"{path}: header promises {dims}, data has {body.size} bytes")
    return body.reshape(dims)


def load_batches(torch, root, need, batch_size, shape):
    """Standardised images fitted to `shape` (zero-padded, centred, to its
    size; grey replicated to its channels) [n, C, H, W], and labels [n]."""
    import numpy as np

    images = read_idx(find_idx(root, TRAIN_STEMS["images"]))
    labels = read_idx(find_idx(root, TRAIN_STEMS["labels"]))
    n = min(need, len(images), len(labels))
    if n < batch_size:
        raise Unsupported(f"{root} has {n} training images, fewer than one batch of {batch_size}")
    x = images[:n].reshape(n, -1).astype(np.float64)
    pixels = x.shape[1]
    mean = x.mean(axis=1, keepdims=True)
    std = np.maximum(x.std(axis=1, keepdims=True), 1.0 / math.sqrt(pixels))
    h, w = images.shape[1], images.shape[2]
    x = ((x - mean) / std).astype(np.float32).reshape(n, 1, h, w)
    c, hh, ww = shape
    if hh < h or ww < w:
        raise Unsupported(
            f"the network takes {c}x{hh}x{ww} inputs; the images are 1x{h}x{w} (padded, never cropped)"
        )
    top, left = (hh - h) // 2, (ww - w) // 2
    x = np.pad(x, ((0, 0), (0, 0), (top, hh - h - top), (left, ww - w - left)))
    if c != 1:
        # Grey replicated into every channel the network takes, after the
        # padding, as acbench_data::fit::fit_images does.
        x = np.repeat(x, c, axis=1)
    return (
        torch.from_numpy(np.ascontiguousarray(x)),
        torch.from_numpy(labels[:n].astype(np.int64)),
    )


# --- activations -----------------------------------------------------------

def _arelu(torch, x, p):
    # The natural (and fastest) PyTorch form. Its gradient at ties is split
    # 50/50 where acbench's max gives all of it to the first argument, so
    # from AReLU's a = b, c = d start PyTorch's copy stays linear: the same
    # cost per step, not the same trajectory.
    return torch.maximum(p["a"] * x + p["c"], p["b"] * x + p["d"])


def _lrelu(torch, x, p):
    s = p["s"]
    if s.numel() == 1 and 0.0 <= float(s) <= 1.0:
        return torch.nn.functional.leaky_relu(x, float(s))
    return torch.maximum(x, s * x)


def _prelu(torch, x, p):
    return torch.nn.functional.prelu(x, p["p"].reshape(-1))


def _pelu(torch, x, p):
    a, b = p["a"], p["b"]
    return torch.where(x >= 0, (a / b) * x, a * (torch.exp(torch.clamp(x, max=0) / b) - 1))


# Keyed by the formula (acbench's plugin definition), so that any plugin
# activation with one of these formulas runs, per layer or per channel.
ACTIVATIONS = {
    "relu(x)": lambda torch, x, p: torch.relu(x),
    "sigmoid(x)": lambda torch, x, p: torch.sigmoid(x),
    "tanh(x)": lambda torch, x, p: torch.tanh(x),
    "max(a * x + c, b * x + d)": _arelu,
    "b * sigmoid(a * x + c) + d": lambda torch, x, p: p["b"] * torch.sigmoid(p["a"] * x + p["c"]) + p["d"],
    "b * tanh(a * x + c) + d": lambda torch, x, p: p["b"] * torch.tanh(p["a"] * x + p["c"]) + p["d"],
    "max(x, s * x)": _lrelu,
    "relu(x) + p * min(x, 0)": _prelu,
    "x * sigmoid(beta * x)": lambda torch, x, p: x * torch.sigmoid(p["beta"] * x),
    "relu(x) + bias": lambda torch, x, p: torch.relu(x) + p["bias"],
    "where(x >= 0, (a / b) * x, a * (exp(min(x, 0) / b) - 1))": _pelu,
}


# --- the network ------------------------------------------------------------

def build(torch, spec):
    nn = torch.nn
    F = torch.nn.functional
    acts = spec["acts"]

    class Act(nn.Module):
        def __init__(self, path, bound, rank):
            super().__init__()
            formula = bound["formula"]
            if formula not in ACTIVATIONS:
                known = ", ".join(sorted(ACTIVATIONS))
                raise Unsupported(
                    f"{path}: activation `{bound['activation']}` (formula `{formula}`) has no "
                    f"PyTorch equivalent here; known formulas: {known}"
                )
            self.fn = ACTIVATIONS[formula]
            self.activation = bound["activation"]
            # [C] values broadcast over the channel axis of [N, C, ...].
            self.view = (1, -1) + (1,) * (rank - 2)
            self.names = []
            self.clamps = []
            for p in bound["params"]:
                t = torch.tensor(p["values"], dtype=torch.float32)
                name = "p_" + p["name"]
                if p["trainable"]:
                    self.register_parameter(name, nn.Parameter(t))
                    if p.get("min") is not None:
                        self.clamps.append((name, p["min"]))
                else:
                    self.register_buffer(name, t)
                self.names.append((p["name"], name))

        def extra_repr(self):
            return self.activation

        def forward(self, x):
            p = {}
            for short, name in self.names:
                t = getattr(self, name)
                p[short] = t if t.numel() == 1 else t.view(self.view)
            return self.fn(torch, x, p)

        @torch.no_grad()
        def constrain(self):
            for name, lo in self.clamps:
                getattr(self, name).clamp_(min=lo)

    class Padded(nn.Module):
        """F.pad (left, right, top, bottom) with `value`, then `inner`."""

        def __init__(self, pad, inner, value=0.0):
            super().__init__()
            self.pad, self.inner, self.value = pad, inner, value

        def forward(self, x):
            return self.inner(F.pad(x, self.pad, value=self.value))

    class AvgExcludingPad(nn.Module):
        """Average over real cells only, for asymmetric padding."""

        def __init__(self, kernel, stride, pad):
            super().__init__()
            self.kernel, self.stride, self.pad = kernel, stride, pad

        def forward(self, x):
            ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype)
            total = F.avg_pool2d(F.pad(x, self.pad), self.kernel, self.stride)
            count = F.avg_pool2d(F.pad(ones, self.pad), self.kernel, self.stride)
            return total / count

    class Lambda(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    class Residual(nn.Module):
        def __init__(self, body, shortcut):
            super().__init__()
            self.body, self.shortcut = body, shortcut

        def forward(self, x):
            return self.body(x) + (self.shortcut(x) if len(self.shortcut) else x)

    class Concat(nn.Module):
        def __init__(self, branches):
            super().__init__()
            self.branches = nn.ModuleList(branches)

        def forward(self, x):
            return torch.cat([b(x) for b in self.branches], 1)

    class Dense(nn.Module):
        def __init__(self, layers):
            super().__init__()
            self.layers = nn.ModuleList(layers)

        def forward(self, x):
            for layer in self.layers:
                x = torch.cat([x, layer(x)], 1)
            return x

    def window_pad(p):
        pd = p["padding"]
        return (pd["left"], pd["right"], pd["top"], pd["bottom"])

    def symmetric(pad):
        left, right, top, bottom = pad
        return left == right and top == bottom

    def seq(nodes):
        return nn.Sequential(*[node(n) for n in nodes])

    def node(n):
        op = n["op"]
        if isinstance(op, str):
            kind, a = op, None
        else:
            (kind, a), = op.items()
        rank = 4 if "Image" in n["input"] else 2
        if kind == "Conv2d":
            pad = window_pad(a)
            same = symmetric(pad)
            conv = nn.Conv2d(
                a["in_channels"], a["out_channels"], tuple(a["kernel"]),
                stride=tuple(a["stride"]),
                padding=(pad[2], pad[0]) if same else 0,
                dilation=tuple(a["dilation"]), groups=a["groups"], bias=a["bias"],
            )
            return conv if same else Padded(pad, conv)
        if kind == "BatchNorm":
            cls = nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d
            return cls(a["channels"], eps=a["eps"], momentum=round(1.0 - a["momentum"], 12))
        if kind == "Lrn":
            size = 2 * a["radius"] + 1
            return nn.LocalResponseNorm(size, alpha=a["alpha"] * size, beta=a["beta"], k=a["bias"])
        if kind == "Pool":
            k, s, pad = tuple(a["kernel"]), tuple(a["stride"]), window_pad(a)
            # PyTorch's own padding is symmetric and at most half the window.
            native = symmetric(pad) and pad[2] <= k[0] // 2 and pad[0] <= k[1] // 2
            if a["kind"] == "Max":
                if native:
                    return nn.MaxPool2d(k, s, padding=(pad[2], pad[0]))
                return Padded(pad, nn.MaxPool2d(k, s), value=float("-inf"))
            include = a["count_include_pad"]
            if native:
                return nn.AvgPool2d(k, s, padding=(pad[2], pad[0]), count_include_pad=include)
            if include:
                return Padded(pad, nn.AvgPool2d(k, s))
            return AvgExcludingPad(k, s, pad)
        if kind == "GlobalAvgPool":
            return Lambda(lambda x: x.mean((2, 3)))
        if kind == "Dropout":
            return nn.Dropout(a["rate"])
        if kind == "Flatten":
            return nn.Flatten()
        if kind == "Linear":
            return nn.Linear(a["in_features"], a["out_features"], bias=a["bias"])
        if kind == "Act":
            bound = acts.get(n["path"])
            if bound is None:
                raise Unsupported(f"{n['path']}: no activation given for this act node")
            return Act(n["path"], bound, rank)
        if kind == "Residual":
            return Residual(seq(a["body"]), seq(a["shortcut"]))
        if kind == "Concat":
            return Concat([seq(b) for b in a["branches"]])
        if kind == "Dense":
            return Dense([seq(layer) for layer in a["layers"]])
        raise Unsupported(f"{n['path']}: unknown layer kind {kind!r} (a newer acbench?)")

    net = spec["network"]
    model = seq(net["body"])
    image = net["input"].get("Image")
    if image is None:
        raise Unsupported(f"network `{net['name']}` does not take images")
    return model, (image["c"], image["h"], image["w"])


# --- memory ------------------------------------------------------------------

def peak_rss_mib():
    """Peak RSS of this process's own memory, MiB.

    Linux's VmHWM (/proc/self/status), not ru_maxrss: exec keeps the larger
    of the old and new address space's high-water marks in ru_maxrss, and a
    process started by posix_spawn (vfork) inherits its parent's, so
    ru_maxrss would report at least the peak of the `acbench bench` that
    started this script. ru_maxrss (KiB on Linux) is the fallback without /proc.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    value, unit = line.split()[1:3]
                    if unit == "kB":
                        return int(value) / 1024.0
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- main ---------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probe", action="store_true", help="import torch, print its version, exit")
    ap.add_argument("--spec", help="network + activations JSON written by acbench")
    ap.add_argument("--data", help="folder holding Fashion-MNIST's IDX files")
    ap.add_argument("--batches", type=int, default=40, help="timed batches")
    ap.add_argument("--warmup", type=int, default=5, help="untimed warm-up batches")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch = import_torch()
    if args.probe:
        print(json.dumps({"torch": torch.__version__}))
        return 0
    if not args.spec or not args.data:
        ap.error("--spec and --data are required (or --probe)")
    if args.batches < 1 or args.warmup < 0 or args.batch_size < 1 or args.threads < 1:
        ap.error("--batches, --batch-size and --threads must be at least 1, --warmup at least 0")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    with open(args.spec) as fh:
        spec = json.load(fh)
    try:
        model, shape = build(torch, spec)
        steps = args.warmup + args.batches
        x, y = load_batches(torch, args.data, steps * args.batch_size, args.batch_size, shape)
    except Unsupported as e:
        print(f"pytorch_reference: {e}", file=sys.stderr)
        return EXIT_UNSUPPORTED
    n = len(x)
    model.train()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    constrained = [m for m in model.modules() if getattr(m, "clamps", None)]
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(i):
        s = (i * args.batch_size) % (n - args.batch_size + 1)
        xb, yb = x[s:s + args.batch_size], y[s:s + args.batch_size]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        for m in constrained:
            m.constrain()
        return loss

    for i in range(args.warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(args.warmup, steps):
        loss = step(i)
    final_loss = float(loss)
    seconds = time.perf_counter() - t0

    peak_mib = peak_rss_mib()
    print(json.dumps({
        "img_s": args.batches * args.batch_size / seconds,
        "peak_rss_mb": peak_mib,
        "params": params,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "final_loss": final_loss,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

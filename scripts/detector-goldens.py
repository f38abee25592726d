#!/usr/bin/env python3
"""Golden values of the `fcos` detector plugin's loss from torchvision.ops.

Writes plugins/fcos/tests/torchvision-goldens.txt: one case per line, fields
`name=v,v,...` separated by `;`, read by plugins/fcos/src/tests.rs without
Python. Each case is a 1 x n grid of stride 8 (locations at x = (j + 0.5) * 8,
y = 4): class labels (-2 ignored, -1 background, else the class), class
logits, raw box values (distance = 8 * softplus(raw)), target distances
[l, t, r, b], centerness logits and targets. `expected` is torchvision's

  cls = sigmoid_focal_loss(logits[not ignored], one_hot, alpha, gamma, "sum") / N
  box = generalized_box_iou_loss(pred[fg], target[fg], "sum") / N
  ctr = binary_cross_entropy_with_logits(ctr[fg], ctr_target[fg], "sum") / N

with N = max(1, foreground locations), boxes in xyxy around each location,
computed in float64 from the float32 inputs the Rust test reads.

Usage: a venv with torch and torchvision from PyPI (bench/setup-pytorch.sh
makes one in ~/.cache/acbench/torch-venv; then `pip install --no-deps
torchvision pillow` there), then
  ~/.cache/acbench/torch-venv/bin/python scripts/detector-goldens.py
"""

import pathlib

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

OUT = pathlib.Path(__file__).resolve().parent.parent / "plugins/fcos/tests/torchvision-goldens.txt"
STRIDE = 8.0


def f32(a):
    """The values as the Rust side reads them: float32, written exactly."""
    return np.asarray(a, dtype=np.float32)


def case(rng, n, classes, alpha, gamma, fg_rate, ignore_rate, scale):
    u = rng.random(n)
    labels = np.where(
        u < ignore_rate, -2, np.where(u < ignore_rate + fg_rate, rng.integers(0, classes, n), -1)
    ).astype(np.float32)
    logits = f32(rng.normal(0, scale, (n, classes)))
    box_raw = f32(rng.normal(0, 1.5, (n, 4)))
    box_target = f32(rng.uniform(0.5, 30.0, (n, 4)))
    ctr_logit = f32(rng.normal(0, scale, n))
    ctr_target = f32(rng.uniform(0, 1, n))

    d = lambda a: torch.tensor(a, dtype=torch.float64)
    lab = d(labels)
    fg = lab >= 0
    valid = lab != -2
    norm = max(1.0, float(fg.sum()))
    onehot = torch.zeros(n, classes, dtype=torch.float64)
    onehot[fg, lab[fg].long()] = 1.0
    cls = sigmoid_focal_loss(d(logits)[valid], onehot[valid], alpha=alpha, gamma=gamma, reduction="sum") / norm

    x = (torch.arange(n, dtype=torch.float64) + 0.5) * STRIDE
    y = torch.full((n,), STRIDE / 2, dtype=torch.float64)
    dist = STRIDE * F.softplus(d(box_raw))
    tgt = d(box_target)

    def xyxy(q):
        return torch.stack([x - q[:, 0], y - q[:, 1], x + q[:, 2], y + q[:, 3]], dim=1)

    if fg.any():
        box = generalized_box_iou_loss(xyxy(dist)[fg], xyxy(tgt)[fg], reduction="sum") / norm
        ctr = F.binary_cross_entropy_with_logits(d(ctr_logit)[fg], d(ctr_target)[fg], reduction="sum") / norm
    else:
        box = torch.tensor(0.0)
        ctr = torch.tensor(0.0)

    def join(a):
        return ",".join(repr(float(v)) for v in np.asarray(a).ravel())

    return ";".join(
        [
            f"classes={classes}",
            f"alpha={alpha!r}",
            f"gamma={gamma!r}",
            f"labels={join(labels)}",
            f"logits={join(logits)}",
            f"box_raw={join(box_raw)}",
            f"box_target={join(box_target)}",
            f"ctr_logit={join(ctr_logit)}",
            f"ctr_target={join(ctr_target)}",
            f"expected={float(cls)!r},{float(box)!r},{float(ctr)!r}",
        ]
    )


def main():
    rng = np.random.default_rng(20261204)
    settings = [
        # n, classes, alpha, gamma, fg rate, ignore rate, logit scale
        (16, 3, 0.25, 2.0, 0.3, 0.0, 1.0),
        (32, 10, 0.25, 2.0, 0.2, 0.1, 2.0),
        (24, 1, 0.25, 2.0, 0.5, 0.0, 1.0),
        (20, 4, -1.0, 0.0, 0.3, 0.1, 1.0),  # no alpha, plain BCE
        (20, 4, 0.5, 1.5, 0.3, 0.0, 1.0),
        (12, 5, 0.25, 2.0, 0.0, 0.2, 1.0),  # no foreground: N = 1
        (16, 3, 0.25, 2.0, 0.4, 0.0, 12.0),  # saturated logits
        (64, 20, 0.25, 2.0, 0.1, 0.05, 3.0),
    ]
    lines = ["# torchvision.ops goldens for plugins/fcos (scripts/detector-goldens.py); "
             f"torch {torch.__version__}"]
    for s in settings:
        lines.append(case(rng, *s))
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(settings)} cases to {OUT}")


if __name__ == "__main__":
    main()

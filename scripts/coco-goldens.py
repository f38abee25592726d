#!/usr/bin/env python3
"""Writes detect/tests/fixtures/coco-goldens.json: ground truths, detections
and what the reference implementations make of them, so that
`detect/tests/coco_goldens.rs` checks acbench-detect without Python.

- COCO: pycocotools' COCOeval (iouType='bbox', default parameters): the 12
  numbers of `stats`, and for the hand-made cases the lines `summarize`
  prints.
- PASCAL VOC: AP50 per class by the 11-point (VOC2007) and all-point
  (VOC2010+) rules, from `voc_eval` and `voc_ap` below: a faithful copy of
  py-faster-rcnn's voc_eval.py (Ross Girshick, MIT licence),
  reading records from memory instead of XML and text files, with one change:
  detections are sorted with a stable sort (kind='mergesort'), where the
  original's default quicksort leaves equal scores in no defined order.
  Boxes go in as the devkit's inclusive pixel corners: xmin = x,
  xmax = x + w - 1. A difficult object is one marked `difficult` (else
  `ignore`) or `iscrowd`.

The cases: hand-made edge cases (ties in score, crowd ground truth, boxes on
the area-range borders 32^2 and 96^2, a class without ground truth, more than
100 detections in one image, duplicate detections, an image without
detections, a detection on an image without ground truth, ...) and random ones
from a fixed seed. Annotation ids start at 1 (pycocotools takes a match to
annotation 0 for no match).

Run it from the repository root with a venv outside the repository:

    python3 -m venv /tmp/coco-venv && /tmp/coco-venv/bin/pip install pycocotools numpy
    /tmp/coco-venv/bin/python scripts/coco-goldens.py
"""

import contextlib
import copy
import io
import json
import random
import sys
from importlib.metadata import version

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

OUT = "detect/tests/fixtures/coco-goldens.json"
SEED = 20_240_601
RANDOM_CASES = 220


# --------------------------------------------------------------------------
# COCO: pycocotools itself.


def coco_eval(gt, dt):
    """pycocotools' stats and printed summary lines for ground truth `gt` (a
    dict in instances_*.json form) and detections `dt` (a results list)."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        if dt:
            coco_dt = coco_gt.loadRes(copy.deepcopy(dt))
        else:
            # loadRes cannot take an empty list (it reads anns[0]); this is
            # what it builds otherwise, with no annotations.
            coco_dt = COCO()
            coco_dt.dataset["images"] = list(gt["images"])
            coco_dt.dataset["categories"] = copy.deepcopy(gt["categories"])
            coco_dt.dataset["annotations"] = []
            coco_dt.createIndex()
        e = COCOeval(coco_gt, coco_dt, iouType="bbox")
        e.evaluate()
        e.accumulate()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        e.summarize()
    lines = [l for l in out.getvalue().splitlines() if l.startswith(" Average")]
    assert len(lines) == 12, out.getvalue()
    return [float(v) for v in e.stats], lines


# --------------------------------------------------------------------------
# PASCAL VOC: py-faster-rcnn's voc_ap and voc_eval, records from memory.


def voc_ap(rec, prec, use_07_metric=False):
    """ap = voc_ap(rec, prec, [use_07_metric])
    Compute VOC AP given precision and recall.
    If use_07_metric is true, uses the
    VOC 07 11 point method (default:False).
    """
    if use_07_metric:
        # 11 point metric
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            if np.sum(rec >= t) == 0:
                p = 0
            else:
                p = np.max(prec[rec >= t])
            ap = ap + p / 11.0
    else:
        # correct AP calculation
        # first append sentinel values at the end
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))

        # compute the precision envelope
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])

        # to calculate area under PR curve, look for points
        # where X axis (recall) changes value
        i = np.where(mrec[1:] != mrec[:-1])[0]

        # and sum (\Delta recall) * prec
        ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    return ap


def voc_eval(recs, imagenames, detections, classname, ovthresh=0.5, use_07_metric=False):
    """voc_eval with `recs` (image -> objects with name, bbox as inclusive
    corners, difficult) and `detections` (this class's lines as
    (image, confidence, xmin, ymin, xmax, ymax)) given, not read. Returns
    (npos, ap); ap is None without positives (the original divides by 0)."""
    # extract gt objects for this class
    class_recs = {}
    npos = 0
    for imagename in imagenames:
        R = [obj for obj in recs[imagename] if obj["name"] == classname]
        bbox = np.array([x["bbox"] for x in R], dtype=float).reshape(-1, 4)
        difficult = np.array([x["difficult"] for x in R]).astype(bool)
        det = [False] * len(R)
        npos = npos + sum(~difficult)
        class_recs[imagename] = {"bbox": bbox, "difficult": difficult, "det": det}

    # read dets
    image_ids = [x[0] for x in detections]
    confidence = np.array([float(x[1]) for x in detections])
    BB = np.array([[float(z) for z in x[2:]] for x in detections]).reshape(-1, 4)

    # sort by confidence (stable: see the module's docstring)
    sorted_ind = np.argsort(-confidence, kind="mergesort")
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]

    # go down dets and mark TPs and FPs
    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    with np.errstate(invalid="ignore", divide="ignore"):
        for d in range(nd):
            R = class_recs[image_ids[d]]
            bb = BB[d, :].astype(float)
            ovmax = -np.inf
            BBGT = R["bbox"].astype(float)

            if BBGT.size > 0:
                # compute overlaps
                # intersection
                ixmin = np.maximum(BBGT[:, 0], bb[0])
                iymin = np.maximum(BBGT[:, 1], bb[1])
                ixmax = np.minimum(BBGT[:, 2], bb[2])
                iymax = np.minimum(BBGT[:, 3], bb[3])
                iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
                ih = np.maximum(iymax - iymin + 1.0, 0.0)
                inters = iw * ih

                # union
                uni = (
                    (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                    + (BBGT[:, 2] - BBGT[:, 0] + 1.0) * (BBGT[:, 3] - BBGT[:, 1] + 1.0)
                    - inters
                )

                overlaps = inters / uni
                ovmax = np.max(overlaps)
                jmax = np.argmax(overlaps)

            if ovmax > ovthresh:
                if not R["difficult"][jmax]:
                    if not R["det"][jmax]:
                        tp[d] = 1.0
                        R["det"][jmax] = 1
                    else:
                        fp[d] = 1.0
            else:
                fp[d] = 1.0

    if npos == 0:
        return 0, None
    # compute precision recall
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    # avoid divide by zero in case the first detection matches a difficult
    # ground truth
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = voc_ap(rec, prec, use_07_metric)
    return int(npos), float(ap)


def corners(b):
    x, y, w, h = (float(v) for v in b)
    return [x, y, x + w - 1.0, y + h - 1.0]


def voc(gt, dt):
    """Per category (ascending id): positives and AP by both rules, and the
    means (np.mean of the classes with positives)."""
    imagenames = [img["id"] for img in gt["images"]]
    cats = sorted(c["id"] for c in gt["categories"])
    recs = {i: [] for i in imagenames}
    for a in gt["annotations"]:
        flag = a["difficult"] if "difficult" in a else a.get("ignore", 0)
        recs[a["image_id"]].append(
            {
                "name": a["category_id"],
                "bbox": corners(a["bbox"]),
                "difficult": bool(flag) or bool(a.get("iscrowd", 0)),
            }
        )
    out = {"classes": [], "mean07": None, "mean12": None}
    aps07, aps12 = [], []
    for c in cats:
        lines = [(d["image_id"], d["score"], *corners(d["bbox"])) for d in dt if d["category_id"] == c]
        npos, ap07 = voc_eval(recs, imagenames, lines, c, use_07_metric=True)
        _, ap12 = voc_eval(recs, imagenames, lines, c, use_07_metric=False)
        out["classes"].append({"category_id": c, "positives": npos, "ap07": ap07, "ap12": ap12})
        if ap07 is not None:
            aps07.append(ap07)
            aps12.append(ap12)
    if aps07:
        out["mean07"] = float(np.mean(aps07))
        out["mean12"] = float(np.mean(aps12))
    return out


# --------------------------------------------------------------------------
# Cases.


def make_gt(images, categories, anns):
    """`anns`: dicts with image_id, category_id, bbox and optionally area
    (default w*h), iscrowd (default 0), difficult, ignore; ids from 1."""
    out = []
    for i, a in enumerate(anns):
        b = a["bbox"]
        ann = {
            "id": i + 1,
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": b,
            "area": a.get("area", b[2] * b[3]),
            "iscrowd": a.get("iscrowd", 0),
        }
        for k in ("difficult", "ignore"):
            if k in a:
                ann[k] = a[k]
        out.append(ann)
    return {
        "images": [{"id": i} for i in images],
        "annotations": out,
        "categories": [{"id": c, "name": f"class{c}"} for c in categories],
    }


def A(image_id, category_id, bbox, **kw):
    return dict(image_id=image_id, category_id=category_id, bbox=bbox, **kw)


def D(image_id, category_id, bbox, score):
    return {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}


def hand_cases():
    cases = []

    def case(name, gt, dt):
        cases.append({"name": name, "gt": gt, "dt": dt})

    case(
        "ties in score, across and within images",
        make_gt(
            [2, 1],
            [1],
            [A(1, 1, [0, 0, 40, 40]), A(2, 1, [10, 10, 40, 40]), A(2, 1, [100, 100, 20, 20])],
        ),
        [
            D(2, 1, [300, 300, 40, 40], 0.5),
            D(1, 1, [0, 0, 40, 40], 0.5),
            D(2, 1, [10, 10, 40, 40], 0.5),
            D(2, 1, [100, 100, 20, 20], 0.7),
            D(1, 1, [200, 0, 40, 40], 0.7),
            D(2, 1, [101, 100, 20, 20], 0.5),
        ],
    )
    case(
        "scores 0 and -0 tie",
        make_gt([1], [1], [A(1, 1, [0, 0, 40, 40]), A(1, 1, [50, 50, 40, 40])]),
        [D(1, 1, [200, 0, 40, 40], 0.0), D(1, 1, [0, 0, 40, 40], -0.0), D(1, 1, [50, 50, 40, 40], 0.0)],
    )
    case(
        "crowd ground truth absorbs detections",
        make_gt(
            [1],
            [1],
            [
                A(1, 1, [0, 0, 300, 300], iscrowd=1, area=50000),
                A(1, 1, [10, 10, 50, 50]),
                A(1, 1, [400, 400, 30, 30]),
            ],
        ),
        [
            D(1, 1, [100, 100, 40, 40], 0.95),
            D(1, 1, [150, 150, 40, 40], 0.9),
            D(1, 1, [280, 280, 40, 40], 0.9),
            D(1, 1, [10, 10, 50, 50], 0.8),
            D(1, 1, [12, 10, 50, 50], 0.85),
            D(1, 1, [400, 400, 30, 30], 0.3),
        ],
    )
    case(
        "crowd ground truth listed first is sorted last",
        make_gt(
            [1],
            [1],
            [A(1, 1, [0, 0, 100, 100], iscrowd=1), A(1, 1, [0, 0, 60, 60])],
        ),
        [D(1, 1, [0, 0, 60, 60], 0.9), D(1, 1, [0, 0, 62, 60], 0.8), D(1, 1, [0, 0, 100, 100], 0.7)],
    )
    case(
        "a detection on a crowd region and an object matches the object",
        make_gt(
            [1],
            [1],
            [A(1, 1, [0, 0, 100, 100], iscrowd=1), A(1, 1, [0, 0, 60, 60])],
        ),
        [D(1, 1, [0, 0, 62, 60], 0.9), D(1, 1, [0, 0, 60, 60], 0.8)],
    )
    case(
        "ground truth outside the area range is sorted last",
        make_gt(
            [1],
            [1],
            [A(1, 1, [0, 0, 30, 31], area=5000), A(1, 1, [0, 0, 30, 30])],
        ),
        [D(1, 1, [0, 0, 30, 31], 0.9)],
    )
    case(
        "only crowd ground truth in a class",
        make_gt(
            [1],
            [1, 2],
            [A(1, 1, [0, 0, 100, 100], iscrowd=1), A(1, 2, [0, 0, 50, 50])],
        ),
        [D(1, 1, [0, 0, 50, 50], 0.9), D(1, 2, [0, 0, 50, 50], 0.9)],
    )
    case(
        "boxes exactly on the area borders 32^2 and 96^2",
        make_gt(
            [1, 2],
            [1],
            [
                A(1, 1, [0, 0, 32, 32]),
                A(1, 1, [100, 100, 96, 96]),
                A(2, 1, [0, 0, 16, 64]),
                A(2, 1, [300, 0, 10, 10], area=9216),
                A(2, 1, [400, 0, 10, 10], area=1024),
                A(2, 1, [500, 0, 40, 40], area=1023.9999999999999),
            ],
        ),
        [
            D(1, 1, [0, 0, 32, 32], 0.9),
            D(1, 1, [100, 100, 96, 96], 0.8),
            D(2, 1, [0, 0, 16, 64], 0.7),
            D(2, 1, [300, 0, 10, 10], 0.6),
            D(2, 1, [600, 0, 32, 32], 0.95),
            D(2, 1, [700, 0, 96, 96], 0.94),
            D(2, 1, [900, 0, 8, 128], 0.93),
            D(2, 1, [500, 0, 40, 40], 0.5),
        ],
    )
    case(
        "the area field, not w*h, decides the range",
        make_gt(
            [1],
            [1],
            [A(1, 1, [0, 0, 10, 10], area=5000), A(1, 1, [50, 50, 100, 100], area=500)],
        ),
        [D(1, 1, [0, 0, 10, 10], 0.9), D(1, 1, [50, 50, 100, 100], 0.8)],
    )
    case(
        "a class without ground truth",
        make_gt([1], [1, 2, 3], [A(1, 1, [0, 0, 50, 50]), A(1, 3, [60, 60, 50, 50])]),
        [D(1, 1, [0, 0, 50, 50], 0.9), D(1, 2, [0, 0, 50, 50], 0.95), D(1, 3, [60, 60, 40, 50], 0.5)],
    )
    rng = random.Random(7)
    many = [D(1, 1, [rng.randint(0, 600), rng.randint(0, 600), 30, 30], round(rng.random(), 3)) for _ in range(140)]
    many += [D(1, 1, [10 * i, 0, 20, 20], 0.001 * i) for i in range(1, 6)]
    many += [D(1, 1, [0, 700, 30, 30], 0.5)]
    case(
        "more than 100 detections in one image",
        make_gt([1], [1], [A(1, 1, [10 * i, 0, 20, 20]) for i in range(1, 6)] + [A(1, 1, [0, 700, 30, 30])]),
        many,
    )
    spread = []
    for c in (1, 2):
        spread += [D(1, c, [rng.randint(0, 600), rng.randint(0, 600), 30, 30], 0.9) for _ in range(60)]
        spread += [D(1, c, [0, 0, 30, 30], 0.1)]
    case(
        "more than 100 detections in one image over two classes",
        make_gt([1], [1, 2], [A(1, 1, [0, 0, 30, 30]), A(1, 2, [0, 0, 30, 30])]),
        spread,
    )
    case(
        "duplicate detections",
        make_gt([1], [1], [A(1, 1, [20, 20, 60, 60]), A(1, 1, [200, 200, 60, 60])]),
        [D(1, 1, [20, 20, 60, 60], 0.9)] * 3 + [D(1, 1, [200, 200, 60, 60], 0.9), D(1, 1, [200, 200, 60, 60], 0.4)],
    )
    case(
        "an image without detections",
        make_gt([1, 2], [1], [A(1, 1, [0, 0, 50, 50]), A(2, 1, [0, 0, 50, 50])]),
        [D(1, 1, [0, 0, 50, 50], 0.9)],
    )
    case(
        "a detection on an image without ground truth",
        make_gt([1, 2, 3], [1], [A(1, 1, [0, 0, 50, 50])]),
        [D(1, 1, [0, 0, 50, 50], 0.6), D(3, 1, [0, 0, 50, 50], 0.9), D(2, 1, [5, 5, 50, 50], 0.2)],
    )
    case(
        "no detections at all",
        make_gt([1], [1], [A(1, 1, [0, 0, 50, 50])]),
        [],
    )
    case(
        "IoU exactly at thresholds",
        make_gt([1, 2, 3, 4], [1], [A(i, 1, [0, 0, 100, 100]) for i in (1, 2, 3, 4)]),
        [
            D(1, 1, [0, 0, 100, 50], 0.9),
            D(2, 1, [0, 0, 100, 75], 0.8),
            D(3, 1, [0, 0, 100, 95], 0.7),
            D(4, 1, [0, 0, 100, 80], 0.6),
        ],
    )
    case(
        "an ignore field is overwritten by iscrowd",
        make_gt([1], [1], [A(1, 1, [0, 0, 50, 50], ignore=1), A(1, 1, [100, 0, 50, 50], difficult=1)]),
        [D(1, 1, [0, 0, 50, 50], 0.9), D(1, 1, [100, 0, 50, 50], 0.8)],
    )
    case(
        "equal overlaps: VOC takes the first ground truth, here a difficult one",
        make_gt(
            [1],
            [1],
            [A(1, 1, [0, 0, 50, 50], difficult=1), A(1, 1, [0, 0, 50, 50]), A(1, 1, [80, 0, 50, 50])],
        ),
        [D(1, 1, [0, 0, 50, 50], 0.9), D(1, 1, [80, 0, 50, 50], 0.8)],
    )
    case(
        "boxes of no size and negative size",
        make_gt([1], [1], [A(1, 1, [0, 0, 50, 50]), A(1, 1, [100, 100, 0, 20])]),
        [
            D(1, 1, [0, 0, 0, 50], 0.9),
            D(1, 1, [100, 100, 0, 20], 0.85),
            D(1, 1, [60, 0, -10, 50], 0.8),
            D(1, 1, [0, 0, 50, 50], 0.7),
        ],
    )
    case(
        "unsorted image and category ids",
        make_gt(
            [9, 4, 7],
            [12, 3, 7],
            [
                A(9, 12, [0, 0, 50, 50]),
                A(4, 3, [0, 0, 20, 20]),
                A(7, 7, [10, 10, 200, 200]),
                A(4, 12, [5, 5, 50, 50]),
            ],
        ),
        [
            D(7, 7, [10, 10, 190, 200], 0.5),
            D(9, 12, [0, 0, 50, 45], 0.5),
            D(4, 12, [5, 5, 50, 50], 0.5),
            D(4, 3, [0, 0, 20, 21], 0.5),
            D(9, 3, [0, 0, 20, 20], 0.5),
        ],
    )
    case(
        "a false positive ranked first",
        make_gt([1], [1], [A(1, 1, [10, 10, 50, 50])]),
        [D(1, 1, [200, 200, 50, 50], 0.9), D(1, 1, [10, 10, 50, 50], 0.8)],
    )
    return cases


def random_box(rng, integer):
    # Sizes log-uniform over 2..250 pixels: every area range is hit.
    w = float(np.exp(rng.uniform(np.log(2), np.log(250))))
    h = float(np.exp(rng.uniform(np.log(2), np.log(250))))
    x, y = rng.uniform(0, 500), rng.uniform(0, 500)
    if integer:
        return [round(x), round(y), max(1, round(w)), max(1, round(h))]
    return [round(x, 1), round(y, 1), max(0.5, round(w, 1)), max(0.5, round(h, 1))]


def jitter(rng, b, integer, amount):
    x, y, w, h = b
    dx, dy = rng.gauss(0, amount * w), rng.gauss(0, amount * h)
    sw, sh = np.exp(rng.gauss(0, amount)), np.exp(rng.gauss(0, amount))
    out = [x + dx, y + dy, w * sw, h * sh]
    if integer:
        return [round(out[0]), round(out[1]), max(1, round(out[2])), max(1, round(out[3]))]
    return [round(out[0], 1), round(out[1], 1), max(0.5, round(out[2], 1)), max(0.5, round(out[3], 1))]


def random_case(rng, index):
    integer = rng.random() < 0.5
    images = rng.sample(range(1, 1000), rng.randint(1, 4))
    cats = rng.sample(range(1, 100), rng.randint(1, 3))
    anns = []
    for img in images:
        for _ in range(rng.choice([0, 1, 2, 3, 4, 6])):
            b = random_box(rng, integer)
            a = A(img, rng.choice(cats), b)
            if rng.random() < 0.1:
                a["iscrowd"] = 1
            if rng.random() < 0.15:
                a["area"] = round(b[2] * b[3] * rng.uniform(0.4, 1.2), 2)
            if rng.random() < 0.1:
                a["difficult"] = 1
            anns.append(a)
    dts = []
    score = (lambda: round(rng.random(), 1)) if rng.random() < 0.4 else (lambda: round(rng.random(), 4))
    amount = rng.choice([0.02, 0.08, 0.2])
    for a in anns:
        for _ in range(rng.choice([0, 1, 1, 1, 2])):
            cat = a["category_id"] if rng.random() < 0.9 else rng.choice(cats)
            dts.append(D(a["image_id"], cat, jitter(rng, a["bbox"], integer, amount), score()))
    for _ in range(rng.randint(0, 5)):
        dts.append(D(rng.choice(images), rng.choice(cats), random_box(rng, integer), score()))
    if index % 40 == 7:
        # An image over the 100-detection cut.
        img, cat = rng.choice(images), rng.choice(cats)
        dts += [D(img, cat, random_box(rng, integer), score()) for _ in range(105)]
    rng.shuffle(dts)
    return {"name": f"random {index}", "gt": make_gt(images, cats, anns), "dt": dts}


def main():
    rng = random.Random(SEED)
    cases = hand_cases()
    hand = len(cases)
    cases += [random_case(rng, i) for i in range(RANDOM_CASES)]
    for i, c in enumerate(cases):
        stats, lines = coco_eval(c["gt"], c["dt"])
        c["stats"] = stats
        if i < hand:
            c["lines"] = lines
        c["voc"] = voc(c["gt"], c["dt"])
    doc = {
        "generator": "scripts/coco-goldens.py",
        "pycocotools": version("pycocotools"),
        "numpy": np.__version__,
        "seed": SEED,
        "hand_made": hand,
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases ({hand} hand-made)", file=sys.stderr)


if __name__ == "__main__":
    main()

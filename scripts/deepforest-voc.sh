#!/usr/bin/env bash
# A real detection set with real photos, for acbench's #[ignore]d tests and
# examples: the aerial tree-crown photos with VOC XML boxes that the
# `deepforest` wheel on PyPI ships (MIT licence; Weinstein et al.), laid out
# as a VOC folder. Nothing of it is committed: the wheel is downloaded at run
# time (pip download, no install, no dependencies).
#
#   scripts/deepforest-voc.sh DIR     writes DIR/Annotations, DIR/JPEGImages,
#                                     DIR/ImageSets/Main/{trainval,test}.txt
#
# Then: acbench train --dataset voc:DIR --detector fcos ... (one class, Tree).
# Training photos: OSBS_029 (400x400, 61 trees) and the two YELL crops
# (2299x2472, 574 trees; 1249x1035, 279 trees); test photo: SOAP_061
# (400x400, 37 trees). OSBS_029's annotation names a .tif; the wheel's .png
# of the same photo is used instead.
set -euo pipefail
DIR=${1:?usage: $0 DIR}
VERSION=${DEEPFOREST_VERSION:-2.1.0}
PY=${PYTHON:-python3}
mkdir -p "$DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download --quiet --no-deps "deepforest==$VERSION" -d "$tmp"
"$PY" - "$tmp" "$DIR" <<'PY'
import pathlib, re, sys, zipfile
tmp, out = map(pathlib.Path, sys.argv[1:3])
wheel = next(tmp.glob("deepforest-*.whl"))
train = ["OSBS_029", "2019_YELL_2_528000_4978000_image_crop2", "2019_YELL_2_541000_4977000_image_crop"]
test = ["SOAP_061"]
for sub in ["Annotations", "JPEGImages", "ImageSets/Main"]:
    (out / sub).mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for stem in train + test:
        xml = z.read(f"deepforest/data/{stem}.xml").decode()
        xml = re.sub(r"<filename>.*?</filename>", f"<filename>{stem}.png</filename>", xml)
        (out / "Annotations" / f"{stem}.xml").write_text(xml)
        (out / "JPEGImages" / f"{stem}.png").write_bytes(z.read(f"deepforest/data/{stem}.png"))
    licence = [n for n in z.namelist() if n.endswith("licenses/LICENSE")]
    if licence:
        (out / "LICENSE.deepforest").write_bytes(z.read(licence[0]))
(out / "ImageSets/Main/trainval.txt").write_text("\n".join(train) + "\n")
(out / "ImageSets/Main/test.txt").write_text("\n".join(test) + "\n")
print(f"deepforest {wheel.name}: {len(train)} training and {len(test)} test photos in {out}")
PY

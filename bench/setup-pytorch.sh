#!/usr/bin/env bash
# Create the PyTorch (CPU) reference venv for `acbench bench`, from PyPI only.
# acbench runs its embedded copy of bench/pytorch_reference.py with this
# venv's python (default ~/.cache/acbench/torch-venv/bin/python; `acbench
# bench --python PATH` or $ACBENCH_TORCH_PYTHON point it elsewhere).
#
# Why not plain `pip install torch`: the Linux x86_64 torch wheels on PyPI are
# CUDA builds and pull several GB of nvidia-* and cuda-* wheels. Why not `pip
# install --no-deps torch`: torch/lib/libtorch_cpu.so, libtorch_cuda.so,
# libtorch_python.so, libc10_cuda.so, libtorch_nvshmem.so and
# libtorch_global_deps.so have DT_NEEDED entries on CUDA libraries (torch
# 2.15: libcudart.so.13, libcupti.so.13, libcublas(Lt).so.13, libcudnn.so.9,
# libcufft.so.12, libcufile.so.0, libcusparse.so.12, libcusparseLt.so.0,
# libnccl.so.2, libnvrtc.so.13, libnvshmem_host.so.3; torch 2.5: the .so.12
# family), so the dynamic loader refuses to load them and `import torch`
# fails in torch/__init__.py `_load_global_deps`.
#
# Route taken here (default): install the torch wheel with --no-deps plus the
# pure-Python requirements its METADATA lists (Requires-Dist with markers
# evaluated, less the CUDA stack: nvidia-*, cuda-*, triton), then
# bench/cuda_stubs.py builds tiny *stub* shared libraries (a few KB each)
# named after exactly the CUDA sonames torch's libraries need, exporting
# exactly the symbols they reference under the symbol versions they ask for.
# Sonames, versions and symbols are read from the wheel, not written here,
# so a newer torch on another CUDA major needs no change. The stubs sit in
# torch/lib, which is on the libraries' RPATH ($ORIGIN). Every stub function
# returns an error (cudaErrorNoDevice = 100, cudaGetDeviceCount reports 0
# devices), so torch imports, `torch.cuda.is_available()` is False, and all
# CPU code paths (MKL / oneDNN / OpenMP, shipped inside the wheel) are the
# real ones. Needs a C compiler (cc) and readelf (binutils).
#
# ACBENCH_TORCH_FULL=1 instead does the full `pip install torch` (real CUDA
# libraries, several GB): use that on a GPU machine.
#
# Environment: ACBENCH_TORCH_VERSION (default 2.15.0, the newest torch on
# PyPI when this route was last checked; `pip index versions torch` lists
# the others; torch 2.15 needs Python >= 3.11), ACBENCH_TORCH_VENV (default
# ~/.cache/acbench/torch-venv), PYTHON (default python3). An existing venv
# is kept only if it works and was built for the same torch version and
# route (recorded in its acbench-torch-setup file); otherwise it is rebuilt.
# Prints the venv's python path on the last line of stdout on success.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${ACBENCH_TORCH_VENV:-$HOME/.cache/acbench/torch-venv}"
TORCH_VERSION="${ACBENCH_TORCH_VERSION:-2.15.0}"
PY="${PYTHON:-python3}"
if [ "${ACBENCH_TORCH_FULL:-0}" = 1 ]; then ROUTE=full; else ROUTE=cuda-stubs; fi
# What the venv was built as; one built otherwise is rebuilt.
MARKER="$VENV/acbench-torch-setup"
WANT="torch==$TORCH_VERSION route=$ROUTE"

die() { echo "setup-pytorch: ERROR: $*" >&2; exit 1; }
log() { echo "setup-pytorch: $*" >&2; }

verify() {
  "$VENV/bin/python" - "$TORCH_VERSION" <<'EOF'
import sys
import torch
want = sys.argv[1]
# A local label (2.15.0+cpu) is the same release.
if torch.__version__.split("+")[0] != want:
    sys.exit(f"torch {torch.__version__} is installed, {want} is wanted")
print(torch.__version__, torch.get_num_threads())
torch.manual_seed(0)
conv = torch.nn.Conv2d(1, 4, 3, padding=1)
x = torch.randn(2, 1, 8, 8, requires_grad=True)
y = torch.nn.functional.max_pool2d(torch.relu(conv(x)), 2).sum()
y.backward()
assert conv.weight.grad is not None and x.grad is not None
assert torch.isfinite(conv.weight.grad).all() and torch.isfinite(x.grad).all()
# gradient check of the conv against finite differences (double precision)
c64 = torch.nn.Conv2d(1, 2, 3, padding=1).double()
xi = torch.randn(1, 1, 5, 5, dtype=torch.double, requires_grad=True)
assert torch.autograd.gradcheck(lambda t: c64(t).sum(), (xi,))
print("cuda available:", torch.cuda.is_available())
print("conv forward/backward OK")
EOF
}

if [ -x "$VENV/bin/python" ]; then
  have="$(cat "$MARKER" 2>/dev/null || echo "of unknown make (no $MARKER)")"
  if [ "$have" = "$WANT" ]; then
    if why="$(verify 2>&1 >/dev/null)"; then
      log "existing venv $VENV works ($WANT)"
      echo "$VENV/bin/python"
      exit 0
    fi
    log "existing venv $VENV ($have) does not work: $(tail -n 1 <<<"$why"); rebuilding it"
  else
    log "existing venv $VENV is $have; $WANT is wanted: rebuilding it"
  fi
fi

command -v "$PY" >/dev/null || die "no $PY on PATH (torch $TORCH_VERSION needs a Python its wheels are built for; 2.15: >= 3.11)"
log "creating venv $VENV ($WANT)"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV" || die "python -m venv failed (install python3-venv?)"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
PYVER="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

if [ "$ROUTE" = full ]; then
  "${PIP[@]}" "torch==$TORCH_VERSION" numpy \
    || die "pip install torch==$TORCH_VERSION failed (PyPI reachable? several GB of disk? a torch $TORCH_VERSION wheel for Python $PYVER?)"
else
  "${PIP[@]}" --no-deps "torch==$TORCH_VERSION" \
    || die "pip install --no-deps torch==$TORCH_VERSION failed (PyPI reachable? ~2 GB of disk? a torch $TORCH_VERSION wheel for Python $PYVER?)"
  # torch's own pure-Python requirements, read from the installed wheel's
  # METADATA so that they follow the version (2.5 pins sympy==1.13.1; 2.15
  # wants setuptools and typing-extensions>=4.13).
  DEPS_TEXT="$("$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
import re
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
# The CUDA stack the stubs stand in for, and the GPU kernel compiler.
CUDA_STACK = re.compile(r"^(nvidia-|cuda-|triton$|pytorch-triton)", re.I)
for line in md.requires("torch") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    if CUDA_STACK.match(req.name):
        continue
    req.marker = None
    print(req)
EOF
  )" || die "cannot read torch's requirements from its METADATA"
  mapfile -t DEPS <<<"$DEPS_TEXT"
  log "torch's pure-Python requirements: ${DEPS[*]}"
  log "(pip will warn that torch's CUDA requirements are not installed: the stubs below stand in for them)"
  "${PIP[@]}" "${DEPS[@]}" numpy \
    || die "pip install of torch's pure-Python requirements (${DEPS[*]}) and numpy failed"
  command -v cc >/dev/null || die "no C compiler (cc) to build the CUDA stub libraries: apt-get install gcc"
  command -v readelf >/dev/null || die "no readelf: apt-get install binutils"
  [ -f "$HERE/cuda_stubs.py" ] || die "$HERE/cuda_stubs.py is missing (it sits next to this script)"
  TORCH_LIB="$("$VENV/bin/python" -c 'import importlib.util,os;print(os.path.join(os.path.dirname(importlib.util.find_spec("torch").origin),"lib"))')"
  [ -d "$TORCH_LIB" ] || die "torch/lib not found in the venv"
  log "building CUDA stub libraries in $TORCH_LIB"
  "$VENV/bin/python" "$HERE/cuda_stubs.py" "$TORCH_LIB" \
    || die "building the CUDA stub libraries failed (see above)"
fi

log "verifying import torch + CPU conv forward/backward"
if ! verify >&2; then
  die "torch $TORCH_VERSION in $VENV is not importable / not working on CPU (see the error above); \
the PyTorch side of the benchmark cannot run. Try ACBENCH_TORCH_FULL=1 (full CUDA install, several GB)."
fi
echo "$WANT" > "$MARKER"
log "ok: $(du -sh "$VENV" | cut -f1) in $VENV"
echo "$VENV/bin/python"

#!/usr/bin/env bash
# Prove that the `cuda` feature of the workspace compiles and links on a machine
# without a GPU or a system CUDA toolkit (ARCHITECTURE.md, "CUDA builds"). The toolkit comes from PyPI's nvidia-* wheels in a venv outside the
# repo; nothing is run on a GPU. Idempotent: a second run reuses the venv.
# Slow: candle-kernels' nvcc build takes ~9 min on 2 cores; not for every CI run.
#
# Environment overrides:
#   ACBENCH_CUDA_VENV   venv location        (default ~/.cache/acbench/cuda-venv)
#   CUDA_COMPUTE_CAP    target GPU arch      (default 90: H100/H200)
#   ACBENCH_CUDA_VER    nvcc/runtime release (default 13.4; must be one cudarc 0.19 knows)
#   CARGO_TARGET_DIR    build folder         (default target/cuda, git-ignored via /target)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ACBENCH_CUDA_VENV:-$HOME/.cache/acbench/cuda-venv}
VER=${ACBENCH_CUDA_VER:-13.4}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/cuda}
PY=${PYTHON:-python3}

say()  { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die()  { printf '\nERROR: %s\n' "$*" >&2; exit 1; }
T0=$SECONDS; lap() { echo "    (${1}: $((SECONDS - T0)) s)"; T0=$SECONDS; }

command -v cargo >/dev/null || die "cargo not found on PATH"
command -v cc >/dev/null    || die "no C compiler (cc): nvcc needs a host compiler and the libcuda stub is built with it"
command -v "$PY" >/dev/null || die "$PY not found; set PYTHON=/path/to/python3"

# --- 1. venv with the CUDA toolkit pieces from PyPI -------------------------------
# Minimal set: nvcc (+ its deps nvvm and crt, pinned to the same release: pip would
# otherwise pull the newest ones, which need not match nvcc); cuda-runtime (cuda_*.h
# headers, libcudart: candle-kernels links cudart); cuda-cccl (kernels include
# <cuda/std/limits>; nvcc.profile adds include/cccl); nvrtc, curand, cublas (cudarc's
# `dynamic-linking` feature links -lnvrtc -lcurand -lcublas -lcublasLt).
PKGS=("nvidia-cuda-nvcc==$VER.*" "nvidia-nvvm==$VER.*" "nvidia-cuda-crt==$VER.*"
      "nvidia-cuda-runtime==$VER.*" "nvidia-cuda-nvrtc==$VER.*"
      "nvidia-cuda-cccl>=13,<14" "nvidia-curand>=10.4,<11" "nvidia-cublas>=13,<14")
say "venv: $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV" || die "cannot create venv at $VENV (python3-venv missing?)"
fi
# pip install is a no-op (under a second, no download) when the pins are satisfied.
say "pip install ${PKGS[*]} (about 800 MB download on the first run)"
"$VENV/bin/pip" install -q "${PKGS[@]}" || die "pip install of the nvidia-* wheels failed (no network/PyPI?)"
lap "venv + wheels"

# --- 2. CUDA_HOME and the toolchain ------------------------------------------------
# CUDA 13 wheels all unpack into site-packages/nvidia/cu13 with a toolkit-like
# layout (bin/ include/ lib/ nvvm/), so that folder can serve as CUDA_HOME.
CUDA_HOME=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))') \
  || die "cannot locate site-packages/nvidia in $VENV"
export CUDA_HOME CUDA_PATH=$CUDA_HOME
[ -x "$CUDA_HOME/bin/nvcc" ] || die "nvcc missing at $CUDA_HOME/bin/nvcc"
[ -f "$CUDA_HOME/include/cccl/cuda/std/limits" ] || die "CCCL headers missing under $CUDA_HOME/include/cccl"
# cudarc (cuda-version-from-build-system) and cudaforge run `nvcc` from PATH.
export PATH=$CUDA_HOME/bin:$PATH
NVCC_REL=$(nvcc --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
say "nvcc release $NVCC_REL, CUDA_HOME=$CUDA_HOME, CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP"
[ "$NVCC_REL" = "$VER" ] || die "nvcc reports $NVCC_REL, expected $VER (stale venv? remove $VENV)"

# --- 3. link folder: unversioned names + libcuda stub ------------------------------
# The wheels ship only versioned sonames (libcublas.so.13, ...), but rustc links with
# -lcublas etc., which needs libX.so. And libcuda comes with the GPU driver, not with
# any wheel, so the linker gets a stub that defines every cu* entry point cudarc may
# reference (real driver is found at run time via the soname libcuda.so.1).
LINK=$VENV/cuda-link
mkdir -p "$LINK"
for lib in cudart nvrtc curand cublas cublasLt; do
  f=$(ls "$CUDA_HOME"/lib/lib$lib.so.* 2>/dev/null | grep -E "lib$lib\.so\.[0-9]+$" | head -1) \
    || die "lib$lib.so.* not found in $CUDA_HOME/lib"
  ln -sfn "$f" "$LINK/lib$lib.so"
done
# Rebuilt every run (about 1 s), so a cudarc update cannot leave a stale stub.
say "building libcuda stub"
CUDARC_SRC=$(cd "$ROOT" && cargo metadata --format-version 1 --features acbench/cuda 2>/dev/null |
    "$VENV/bin/python" -c 'import json,sys,os; print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"))') \
    || die "cannot locate the cudarc crate source via cargo metadata"
grep -ohE 'pub unsafe fn cu[A-Za-z0-9_]+\(' "$CUDARC_SRC/src/driver/sys/mod.rs" |
    sed -E 's/pub unsafe fn (cu[A-Za-z0-9_]+)\(/void \1(void) {}/' | sort -u > "$LINK/cuda_stub.c"
[ -s "$LINK/cuda_stub.c" ] || die "no driver symbols found in $CUDARC_SRC"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LINK/libcuda.so" "$LINK/cuda_stub.c" || die "stub build failed"
# LIBRARY_PATH is searched by the cc linker driver after rustc's -L paths.
export LIBRARY_PATH=$LINK${LIBRARY_PATH:+:$LIBRARY_PATH}
export LD_LIBRARY_PATH=$CUDA_HOME/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
lap "toolchain setup"

# --- 4. the builds -----------------------------------------------------------------
cd "$ROOT"
say "cargo build --release -p acbench --features cuda  (target dir $CARGO_TARGET_DIR)"
cargo build --release -p acbench --features cuda || die "cuda build of acbench failed (see above)"
lap "cargo build"
say "cargo check --release --workspace --all-targets --features acbench/cuda"
cargo check --release --workspace --all-targets --features acbench/cuda || die "cuda check of the workspace failed"
lap "cargo check"
BIN=$CARGO_TARGET_DIR/release/acbench
say "OK: cuda build compiles and links: $BIN"
# "libcuda.so.1 => not found" is expected here: the driver comes with a GPU machine.
ldd "$BIN" | grep -E 'cuda|cublas|curand|nvrtc' || true

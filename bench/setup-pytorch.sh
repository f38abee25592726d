#!/usr/bin/env bash
# Create the PyTorch (CPU) reference venv for `acbench bench`, from PyPI only.
# acbench runs its embedded copy of bench/pytorch_reference.py with this
# venv's python (default ~/.cache/acbench/torch-venv/bin/python; `acbench
# bench --python PATH` or $ACBENCH_TORCH_PYTHON point it elsewhere).
#
# Why not plain `pip install torch`: the Linux x86_64 torch wheels on PyPI are
# CUDA builds and pull ~5 GB of nvidia-* wheels. Why not `pip install --no-deps
# torch`: torch/lib/libtorch_cpu.so, libtorch_cuda.so, libtorch_python.so,
# libc10_cuda.so and libtorch_global_deps.so have DT_NEEDED entries on
# libcudart.so.12, libcupti.so.12, libcublas(Lt).so.12, libcudnn.so.9,
# libcufft.so.11, libcurand.so.10, libcusparse.so.12, libnccl.so.2, so the
# dynamic loader refuses to load them and `import torch` fails in
# torch/__init__.py `_load_global_deps` ("libcublas.so.*[0-9] not found in the
# system path").
#
# Route taken here (default): install the torch wheel with --no-deps plus its
# pure-Python deps, then build tiny *stub* shared libraries (a few KB each)
# named after exactly those CUDA sonames, exporting exactly the (versioned)
# CUDA symbols torch's libraries reference. They sit in torch/lib, which is on
# the libraries' RPATH ($ORIGIN). Every stub function returns an error
# (cudaErrorNoDevice = 100, cudaGetDeviceCount reports 0 devices, *ErrorString
# returns a static string), so torch imports, `torch.cuda.is_available()` is
# False, and all CPU code paths (MKL / oneDNN / OpenMP, shipped inside the
# wheel) are the real ones. Needs a C compiler (cc) and readelf (binutils).
#
# ACBENCH_TORCH_FULL=1 instead does the full `pip install torch` (real CUDA
# libraries, ~5 GB): use that on a GPU machine.
#
# Environment: ACBENCH_TORCH_VENV (default ~/.cache/acbench/torch-venv),
# ACBENCH_TORCH_VERSION (default 2.5.1), PYTHON (default python3).
# Prints the venv's python path on the last line of stdout on success.
set -euo pipefail

VENV="${ACBENCH_TORCH_VENV:-$HOME/.cache/acbench/torch-venv}"
TORCH_VERSION="${ACBENCH_TORCH_VERSION:-2.5.1}"
PY="${PYTHON:-python3}"

die() { echo "setup-pytorch: ERROR: $*" >&2; exit 1; }
log() { echo "setup-pytorch: $*" >&2; }

verify() {
  "$VENV/bin/python" - <<'EOF'
import torch
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

if [ -x "$VENV/bin/python" ] && verify >&2 2>/dev/null; then
  log "existing venv $VENV works"
  echo "$VENV/bin/python"
  exit 0
fi

command -v "$PY" >/dev/null || die "no $PY on PATH (need Python 3.9-3.12 for torch $TORCH_VERSION)"
log "creating venv $VENV (torch $TORCH_VERSION)"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV" || die "python -m venv failed (install python3-venv?)"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

if [ "${ACBENCH_TORCH_FULL:-0}" = 1 ]; then
  "${PIP[@]}" "torch==$TORCH_VERSION" numpy || die "pip install torch==$TORCH_VERSION failed (PyPI reachable? ~5 GB of disk?)"
else
  # pure-Python dependencies of torch 2.5.x (sympy pinned as torch pins it)
  "${PIP[@]}" --no-deps "torch==$TORCH_VERSION" \
    filelock "typing-extensions>=4.8" "sympy==1.13.1" mpmath networkx jinja2 MarkupSafe fsspec numpy \
    || die "pip install --no-deps torch==$TORCH_VERSION failed (PyPI reachable? ~2 GB of disk?)"
  command -v cc >/dev/null || die "no C compiler (cc) to build the CUDA stub libraries: apt-get install gcc"
  command -v readelf >/dev/null || die "no readelf: apt-get install binutils"
  TORCH_LIB="$("$VENV/bin/python" -c 'import importlib.util,os;print(os.path.join(os.path.dirname(importlib.util.find_spec("torch").origin),"lib"))')"
  [ -d "$TORCH_LIB" ] || die "torch/lib not found in the venv"
  log "building CUDA stub libraries in $TORCH_LIB"
  if "$VENV/bin/python" - "$TORCH_LIB" <<'EOF'
import collections, os, re, subprocess, sys, tempfile
libdir = sys.argv[1]
CUDA = re.compile(r'^lib(cuda|cudart|cupti|cublas|cublasLt|cudnn|cufft|curand|cusparse|cusparseLt|cusolver|nccl|nvrtc|nvToolsExt|nvJitLink|cufile|nvshmem_host|cudss)\.so\.\d+$')
PREFIX = ('cu', 'nccl', 'nvrtc', 'nvtx', 'nvJitLink', 'nvshmem', '__cuda', '__fatbin')
def run(*a):
    return subprocess.run(a, capture_output=True, text=True, check=True).stdout
libs = [f for f in os.listdir(libdir) if '.so' in f and not CUDA.match(f)]
defined, und, needed = set(), [], set()
for f in libs:
    p = os.path.join(libdir, f)
    needed.update(m for m in re.findall(r'Shared library: \[(.*?)\]', run('readelf', '-d', p)) if CUDA.match(m))
    for line in run('readelf', '--dyn-syms', '-W', p).splitlines():
        c = line.split()
        if len(c) < 8 or not c[0].endswith(':'):
            continue
        typ, bind, ndx, name = c[3], c[4], c[6], c[7]
        base, _, ver = name.partition('@'); ver = ver.lstrip('@')
        if ndx == 'UND':
            und.append((typ, bind, base, ver))
        else:
            defined.add(base)
per = collections.defaultdict(set)
for typ, bind, base, ver in und:
    if base in defined or not base:
        continue
    if ver:
        so = ver if CUDA.match(ver) else None
    elif bind != 'WEAK' and base.startswith(PREFIX):
        so = 'libcudart.so.12'   # unversioned CUDA API refs (curand, nccl, driver)
    else:
        so = None
    if so:
        if typ not in ('FUNC', 'NOTYPE'):
            sys.exit(f'cannot stub CUDA data symbol {base}@{ver}')
        per[so].add(base)
for so in needed:
    per.setdefault(so, set())
tmp = tempfile.mkdtemp()
for so, syms in sorted(per.items()):
    src, vs = os.path.join(tmp, so + '.c'), os.path.join(tmp, so + '.map')
    with open(src, 'w') as fh:
        fh.write('/* acbench: stub for %s, CUDA is not available */\n' % so)
        fh.write('static const char msg[] = "CUDA not available (acbench CPU stub %s)";\n' % so)
        for s in sorted(syms):
            if s == 'cudaGetDeviceCount':
                fh.write('int cudaGetDeviceCount(int *n) { if (n) *n = 0; return 100; }\n')
            elif s.endswith(('ErrorString', 'ErrorName', 'GetErrorString')):
                fh.write('const char *%s(void) { return msg; }\n' % s)
            else:
                fh.write('long %s(void) { return 100; }\n' % s)
    with open(vs, 'w') as fh:
        glob = (' global:\n' + ''.join('  %s;\n' % s for s in sorted(syms))) if syms else ''
        fh.write('%s {\n%s local: *;\n};\n' % (so, glob))
    out = os.path.join(libdir, so)
    subprocess.run(['cc', '-shared', '-fPIC', '-O1', '-w', '-o', out, src,
                    '-Wl,-soname,' + so, '-Wl,--version-script=' + vs], check=True)
    print(f'  stub {so}: {len(syms)} symbols', file=sys.stderr)
EOF
  then :; else die "building the CUDA stub libraries failed (see above)"; fi
fi

log "verifying import torch + CPU conv forward/backward"
if ! verify >&2; then
  die "torch $TORCH_VERSION in $VENV is not importable / not working on CPU (see the error above); \
the PyTorch side of the benchmark cannot run. Try ACBENCH_TORCH_FULL=1 (full CUDA install, ~5 GB)."
fi
log "ok: $(du -sh "$VENV" | cut -f1) in $VENV"
echo "$VENV/bin/python"

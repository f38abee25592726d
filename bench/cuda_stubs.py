#!/usr/bin/env python3
"""Build stub CUDA libraries into a CPU-only torch's torch/lib (used by
bench/setup-pytorch.sh; `python cuda_stubs.py TORCH_LIB`).

torch's Linux wheels are CUDA builds: libtorch_cpu.so, libtorch_cuda.so,
libtorch_python.so, ... have DT_NEEDED entries on CUDA libraries (cudart,
cublas, cudnn, nccl, nvshmem, ...). Without them the dynamic loader refuses
to load torch. This script reads, with readelf, what torch's own libraries
need and reference, and builds one small shared library per missing CUDA
soname that exports exactly those symbols:

- DT_NEEDED entries matching CUDA_SONAME name the stubs;
- a versioned undefined symbol (`cudaMalloc@libcudart.so.13`) goes to the
  soname that the library's version-needs section (.gnu.version_r) ties
  that version to (mostly the soname itself; `NVSHMEM` belongs to
  libnvshmem_host.so.3), under a version node of that name, since the
  loader checks every needed version exists;
- an unversioned one with a CUDA prefix (`cuModuleLoad`, `ncclGetVersion`)
  goes to a stub of its family that the referencing library itself needs
  (else its libcudart), so it is in that library's load scope;
- functions return 100 (cudaErrorNoDevice), cudaGetDeviceCount reports 0
  devices, *ErrorString/*ErrorName return a static message, data symbols
  are zeroed blocks.

So torch imports, torch.cuda.is_available() is False, and every CPU code
path is torch's own. Nothing here names a torch or CUDA version: the sonames
and versions come from the wheel.
"""
import collections
import os
import re
import subprocess
import sys
import tempfile

CUDA_SONAME = re.compile(
    r"^lib(cuda|cudart|cupti|cublas|cublasLt|cudnn|cufft|curand|cusparse|cusparseLt|cusolver"
    r"|nccl|nvrtc|nvToolsExt|nvJitLink|cufile|nvshmem_host|cudss)\.so\.\d+$"
)
# Prefixes of unversioned references that are CUDA's (others, such as
# __gmon_start__, are not ours to provide).
CUDA_PREFIX = ("cu", "CUpti", "nccl", "nvrtc", "nvtx", "nvJitLink", "nvshmem", "__cuda", "__fatbin")
# Symbol family -> library family (the soname without lib and .so.N). The
# order matters: the first match wins (cuda* before cu*, cublasLt before cublas).
FAMILY = [
    (r"^(cuda|__cuda|__fatbin)", "cudart"),
    (r"^(cupti|CUpti)", "cupti"),
    (r"^cublasLt", "cublasLt"),
    (r"^cublas", "cublas"),
    (r"^cudnn", "cudnn"),
    (r"^cufft", "cufft"),
    (r"^curand", "curand"),
    (r"^cusparseLt", "cusparseLt"),
    (r"^cusparse", "cusparse"),
    (r"^cusolver", "cusolver"),
    (r"^cuFile", "cufile"),
    (r"^cu[A-Z]", "cuda"),
    (r"^nccl", "nccl"),
    (r"^nvrtc", "nvrtc"),
    (r"^nvtx", "nvToolsExt"),
    (r"^nvJitLink", "nvJitLink"),
    (r"^nvshmem", "nvshmem_host"),
]
FAMILY = [(re.compile(p), f) for p, f in FAMILY]


def readelf(*args):
    return subprocess.run(["readelf", *args], capture_output=True, text=True, check=True).stdout


def family(soname):
    """libcublasLt.so.13 -> cublasLt."""
    return soname[3:].split(".so")[0]


def scan(libdir):
    """What torch's libraries need: per library its CUDA sonames and its
    version -> soname map, every undefined symbol, every defined name."""
    libs = sorted(f for f in os.listdir(libdir) if ".so" in f and not CUDA_SONAME.match(f))
    needs, version_file, refs, defined = {}, {}, [], set()
    for lib in libs:
        path = os.path.join(libdir, lib)
        needed = re.findall(r"Shared library: \[(.*?)\]", readelf("-d", path))
        needs[lib] = [so for so in needed if CUDA_SONAME.match(so)]
        versions, current = {}, None
        for line in readelf("-V", "-W", path).splitlines():
            m = re.search(r"File: (\S+)", line)
            if m:
                current = m.group(1)
                continue
            m = re.search(r"Name: (\S+)", line)
            if m and current:
                versions[m.group(1)] = current
        version_file[lib] = versions
        for line in readelf("--dyn-syms", "-W", path).splitlines():
            c = line.split()
            if len(c) < 8 or not c[0].endswith(":"):
                continue
            typ, bind, ndx, name = c[3], c[4], c[6], c[7]
            base, _, ver = name.partition("@")
            ver = ver.lstrip("@")
            if ndx == "UND":
                refs.append((lib, typ, bind, base, ver))
            else:
                defined.add(base)
    return needs, version_file, refs, defined


def plan(needs, version_file, refs, defined):
    """soname -> {version node (None: unversioned) -> {symbol: type}}."""
    all_needed = sorted({so for v in needs.values() for so in v})
    per = collections.defaultdict(lambda: collections.defaultdict(dict))

    def home(lib, base):
        cands = needs[lib] or all_needed
        for pat, fam in FAMILY:
            if pat.match(base):
                hit = [so for so in cands if family(so) == fam]
                if hit:
                    return hit[0]
                break
        hit = [so for so in cands if family(so) == "cudart"]
        return hit[0] if hit else (cands[0] if cands else None)

    for lib, typ, bind, base, ver in refs:
        if not base or base in defined:
            continue
        if ver:
            so = version_file[lib].get(ver, ver)
            if not CUDA_SONAME.match(so):
                continue
            node = ver
        elif bind != "WEAK" and base.startswith(CUDA_PREFIX):
            so, node = home(lib, base), None
            if so is None:
                continue
        else:
            continue
        if typ not in ("FUNC", "NOTYPE", "OBJECT"):
            sys.exit(f"cannot stub CUDA symbol {base}@{ver} of type {typ} (needed by {lib})")
        per[so][node][base] = typ
    for so in all_needed:
        per[so]  # a needed soname with no referenced symbol still gets a stub
    return per


def build(libdir, so, nodes, tmp):
    # Unversioned references bind to a library's default version: those
    # symbols go under the soname's own node (or the only node there is).
    loose = nodes.pop(None, {})
    if loose:
        if so in nodes or len(nodes) != 1:
            target = so
        else:
            target = next(iter(nodes))
        for s, t in loose.items():
            if not any(s in syms for syms in nodes.values()):
                nodes[target][s] = t
    if not nodes:
        nodes[so] = {}
    src, script = os.path.join(tmp, so + ".c"), os.path.join(tmp, so + ".map")
    seen = set()
    with open(src, "w") as fh:
        fh.write("/* acbench: stub for %s, CUDA is not available */\n" % so)
        fh.write('static const char msg[] = "CUDA not available (acbench CPU stub %s)";\n' % so)
        for syms in nodes.values():
            for s, typ in sorted(syms.items()):
                if s in seen:
                    continue
                seen.add(s)
                if typ == "OBJECT":
                    # Reached through the GOT of a shared library (no copy
                    # relocation), so its size does not matter.
                    fh.write("char %s[256];\n" % s)
                elif s == "cudaGetDeviceCount":
                    fh.write("int cudaGetDeviceCount(int *n) { if (n) *n = 0; return 100; }\n")
                elif s.endswith(("ErrorString", "ErrorName")):
                    fh.write("const char *%s(void) { return msg; }\n" % s)
                else:
                    fh.write("long %s(void) { return 100; }\n" % s)
    with open(script, "w") as fh:
        items = list(nodes.items())
        for i, (node, syms) in enumerate(items):
            glob = (" global:\n" + "".join("  %s;\n" % s for s in sorted(syms))) if syms else ""
            local = " local: *;\n" if i == len(items) - 1 else ""
            fh.write("%s {\n%s%s};\n" % (node, glob, local))
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O1", "-w", "-o", os.path.join(libdir, so), src,
         "-Wl,-soname," + so, "-Wl,--version-script=" + script],
        check=True,
    )
    print(f"  stub {so}: {len(seen)} symbols, versions {', '.join(sorted(nodes))}", file=sys.stderr)


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: cuda_stubs.py TORCH_LIB_DIR")
    libdir = sys.argv[1]
    per = plan(*scan(libdir))
    if not per:
        print("  no CUDA libraries needed: nothing to stub", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for so, nodes in sorted(per.items()):
            build(libdir, so, nodes, tmp)


if __name__ == "__main__":
    main()

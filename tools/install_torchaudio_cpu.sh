#!/usr/bin/env bash
# Make `import torchaudio` work against the CPU build of torch.
#
# The registry only has CUDA builds of torchaudio. torchaudio 2.11.0 declares no torch
# requirement, so `--no-deps` keeps the pinned CPU torch; its compiled extension links
# libc10_cuda.so and cannot load on CPU torch. torchaudio treats a *missing* extension as
# "not built with it" and its Python parts (transforms, functional, compliance.kaldi) work
# without it, so the CUDA-linked libraries are removed after install. edge_str never calls
# the compiled parts (WAV I/O goes through soundfile).
set -euo pipefail
python=${1:-python3}
"$python" -m pip install -q --no-deps "torchaudio==2.11.0"
libdir=$("$python" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("torchaudio").origin).parent / "lib")')
rm -f "$libdir"/*.so
"$python" -c 'import torchaudio.transforms, torchaudio.functional; print("torchaudio", __import__("torchaudio").__version__, "ready (CPU, Python parts)")'

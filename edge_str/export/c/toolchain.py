"""Compile generated C with a real compiler, run it on feature frames, measure its size.

``host_compiler()`` finds gcc (or cc/clang); ``build_runner`` compiles NAME.c with a small
driver (``RUNNER_C``) into a program that reads sequences of frames from a file and writes
the logits (and, on request, the state and logits after every frame); ``run_sequences`` feeds
it numpy arrays. ``object_size`` compiles NAME.c alone and reads ``size -A``: flash is text +
rodata + data, RAM is data + bss (the state struct is the caller's, added by the exporter);
``-fstack-usage`` gives the step's stack. ``CROSS_M4`` is the Cortex-M4F target used when
``arm-none-eabi-gcc`` is installed. Every build uses ``WARNINGS`` with -Werror.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_str.errors import EdgeStrError

WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
OPT_LEVELS = ("-O2", "-Os")
CROSS_M4_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
CROSS_M4 = ("arm-none-eabi-gcc", CROSS_M4_FLAGS)  # Cortex-M4F
_TIMEOUT_S = 600

# The test driver: argv[1] input file (int32 n, t, f, per_frame; then n*t*f input values),
# argv[2] output file (per_frame: after every frame the state, then the logits; else the
# logits after the last frame of each sequence). Prints sizeof(state) on stdout.
RUNNER_C = """\
#include <stdio.h>
#include <stdlib.h>
#include "{p}.h"

int main(int argc, char **argv)
{{
    FILE *in, *out;
    int32_t head[4];
    long n, t, f, per_frame, i, j;
    {p}_input_t *frames;
    {p}_state state;
    {p}_logit_t logits[{P}_CLASSES];
    if (argc != 3 || !(in = fopen(argv[1], "rb")) || !(out = fopen(argv[2], "wb"))) {{
        return 2;
    }}
    if (fread(head, sizeof head, 1, in) != 1) {{
        return 3;
    }}
    n = head[0];
    t = head[1];
    f = head[2];
    per_frame = head[3];
    if (f != {P}_FEATURES) {{
        return 4;
    }}
    frames = ({p}_input_t *)malloc(sizeof(*frames) * (size_t)(t * f));
    for (i = 0; i < n; ++i) {{
        if (fread(frames, sizeof(*frames), (size_t)(t * f), in) != (size_t)(t * f)) {{
            return 5;
        }}
        {p}_reset(&state);
        for (j = 0; j < t; ++j) {{
            {p}_step(&state, frames + j * f);
            if (per_frame) {{
                {p}_logits(&state, logits);
                fwrite(&state, sizeof state, 1, out);
                fwrite(logits, sizeof logits, 1, out);
            }}
        }}
        if (!per_frame) {{
            {p}_logits(&state, logits);
            fwrite(logits, sizeof logits, 1, out);
        }}
    }}
    free(frames);
    fclose(out);
    printf("%lu\\n", (unsigned long)sizeof state);
    return 0;
}}
"""


def host_compiler() -> str | None:
    """The host C compiler (``$CC``, gcc, cc, clang), or None when there is none."""
    for name in (os.environ.get("CC"), "gcc", "cc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def cross_compiler() -> str | None:
    return shutil.which(CROSS_M4[0])


def run_checked(cmd: list[str], what: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=_TIMEOUT_S)
    if result.returncode != 0:
        first = (result.stderr or result.stdout).strip().splitlines()
        raise EdgeStrError(f"{what} failed: {first[0] if first else f'exit {result.returncode}'}")
    return result


def compile_object(
    compiler: str, source: Path, out: Path, opt: str = "-O2", extra: tuple[str, ...] = ()
) -> Path:
    """``compiler WARNINGS opt extra -c source -o out`` (-Werror: a warning fails the build)."""
    cmd = [compiler, *WARNINGS, opt, *extra, "-c", str(source), "-o", str(out)]
    run_checked(cmd, f"{Path(compiler).name} {opt} {source.name}")
    return out


@dataclass
class Runner:
    """A compiled driver program for one generated model."""

    path: Path
    input_dtype: np.dtype
    state_dtype: np.dtype
    logit_dtype: np.dtype
    hidden: int
    classes: int


def build_runner(
    c_dir: Path, prefix: str, integer: bool, hidden: int, classes: int, opt: str = "-O2"
) -> Runner:
    """Compile ``c_dir/prefix.c`` with the test driver into ``c_dir/prefix_runner``."""
    compiler = host_compiler()
    if compiler is None:
        raise EdgeStrError("no C compiler (gcc, cc or clang) found")
    driver = c_dir / f"{prefix}_runner.c"
    driver.write_text(RUNNER_C.format(p=prefix, P=prefix.upper()))
    exe = c_dir / f"{prefix}_runner"
    cmd = [compiler, *WARNINGS, opt, "-I", str(c_dir), str(c_dir / f"{prefix}.c"), str(driver)]
    run_checked([*cmd, "-o", str(exe), "-lm"], f"{Path(compiler).name} {opt} {prefix}.c")
    act = np.dtype(np.int16) if integer else np.dtype(np.float32)
    return Runner(
        exe, act, act, np.dtype(np.int32) if integer else np.dtype(np.float32), hidden, classes
    )


def run_sequences(
    runner: Runner, x: np.ndarray, per_frame: bool = False
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Run the compiled model on x (N, T, F) of ``runner.input_dtype``.

    Returns (logits (N, C), states (N, T, H) or None, sizeof(state)); with ``per_frame`` the
    logits are (N, T, C), one row per frame. Values are the C's raw numbers (integer mode: its
    fixed-point integers).
    """
    x = np.ascontiguousarray(x, dtype=runner.input_dtype)
    n, t, f = x.shape
    folder = runner.path.parent
    src, dst = folder / "frames.bin", folder / "logits.bin"
    with open(src, "wb") as handle:
        handle.write(np.array([n, t, f, int(per_frame)], np.int32).tobytes())
        handle.write(x.tobytes())
    result = run_checked([str(runner.path), str(src), str(dst)], f"running {runner.path.name}")
    raw = dst.read_bytes()
    src.unlink()
    dst.unlink()
    state_bytes = int(result.stdout.strip())
    if not per_frame:
        return np.frombuffer(raw, runner.logit_dtype).reshape(n, runner.classes), None, state_bytes
    record = np.dtype(
        [("s", runner.state_dtype, runner.hidden), ("logits", runner.logit_dtype, runner.classes)]
    )
    frames = np.frombuffer(raw, record).reshape(n, t)
    return frames["logits"], frames["s"], state_bytes


@dataclass
class ObjectSize:
    """Sections of one compiled object, in bytes."""

    text: int
    rodata: int
    data: int
    bss: int
    stack: int  # the largest frame of the object's functions (-fstack-usage)

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data

    @property
    def ram(self) -> int:
        """Static RAM (data + bss): the generated code has neither; the state is the caller's."""
        return self.data + self.bss


def _size_tool(compiler: str) -> str:
    name = Path(compiler).name
    candidate = name[: -len("gcc")] + "size" if name.endswith("gcc") else "size"
    found = shutil.which(candidate) or shutil.which("size")
    if found is None:
        raise EdgeStrError("no `size` program (binutils) found")
    return found


def object_size(
    compiler: str, source: Path, opt: str = "-Os", extra: tuple[str, ...] = ()
) -> ObjectSize:
    """Compile ``source`` alone (-Werror) and read its sections with ``size -A``."""
    obj = source.with_suffix(f".{Path(compiler).name}{opt}.o")
    compile_object(compiler, source, obj, opt, (*extra, "-fstack-usage"))
    listing = run_checked([_size_tool(compiler), "-A", str(obj)], f"size {obj.name}").stdout
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith(".") or not parts[1].isdigit():
            continue
        section, size = parts[0], int(parts[1])
        for kind in sizes:
            if section == f".{kind}" or section.startswith(f".{kind}."):
                sizes[kind] += size
    usage = obj.with_suffix(".su")
    stack = 0
    if usage.is_file():
        for line in usage.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) >= 2 and fields[1].strip().isdigit():
                stack = max(stack, int(fields[1]))
        usage.unlink()
    obj.unlink()
    return ObjectSize(stack=stack, **sizes)

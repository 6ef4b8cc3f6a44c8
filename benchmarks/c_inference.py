"""Per-frame latency and size of the generated C: STR compacted vs dense FastGRNN vs a C GRU.

At the Google-12 shape (32 features, hidden 100, 12 classes), one thread, the system compiler at
-O2 and -Os (``-std=c99 -Wall -Wextra -Werror``), these models' C (random weights: speed and
size, not accuracy):
  fastgrnn_compact  W 6/32, U 5/100: the demo STR model's ranks (``edge-str export --c``'s C,
                    also with int8 weights and integer-only for the sizes)
  fastgrnn_dense    W 32/32, U 100/100 stored dense (the same generator)
  gru               a GRU of the same hidden size written by this benchmark as the same kind of C
                    (the generator's matvec and gates; checked against torch.nn.GRU): the peer
Latency is the time of NAME_step per frame (the head runs once per decision, timed apart), one
process per case, the cases taking turns over the repeats; a figure is the median over repeats, a
ratio the median of the paired per-repeat ratios. Sizes: ``size -A`` of each object for
Cortex-M4F (arm-none-eabi-gcc -Os -mcpu=cortex-m4 -mthumb, hard float) where it is installed:
flash = text + rodata + data, RAM = state + data + bss, and the step's stack (-fstack-usage).
Targets (issue 13): compacted <= 0.10x the GRU per frame; compacted / dense <= 1.5x their MAC
ratio at -Os; the demo model <= 16 KB flash in float32, <= 6 KB with int8 weights, <= 2 KB RAM.

    python -m benchmarks.c_inference [--out FILE.json] [--repeats N]
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.inference import CLASSES, FEATURES, HIDDEN, STEPS, build_fastgrnn
from benchmarks.reporting import run_and_report, script_parser
from edge_str.export.c import export_c_model
from edge_str.export.c.codegen import EXACT_GATES, FLOAT_HELPERS, float_literal
from edge_str.export.c.toolchain import (
    CROSS_M4,
    OPT_LEVELS,
    WARNINGS,
    cross_compiler,
    host_compiler,
    object_size,
    run_checked,
)

DEMO_RANKS = (6, 5)  # the demo STR model's learned ranks of W and U (issue 13)
TARGET_VS_GRU = 0.10
TARGET_VS_MAC_RATIO = 1.5
TARGET_FLASH_FLOAT, TARGET_FLASH_INT8, TARGET_RAM = 16_000, 6_000, 2_000
SEQUENCES = 8  # sequences of STEPS frames the timing driver cycles through

TIMER_C = """\
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "{p}.h"

static double now(void)
{{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}}

/* argv[1]: frames file (int32 n, t, f; then floats), argv[2]: seconds to time the step. */
int main(int argc, char **argv)
{{
    FILE *in;
    int32_t head[3];
    long n, t, f, i, j, frames = 0, calls = 0;
    float *x;
    {p}_state state;
    {p}_logit_t out[{P}_CLASSES];
    double start, seconds, step_s, head_s, sink = 0.0;
    if (argc != 3 || !(in = fopen(argv[1], "rb")) || fread(head, sizeof head, 1, in) != 1) {{
        return 2;
    }}
    n = head[0];
    t = head[1];
    f = head[2];
    x = (float *)malloc(sizeof(float) * (size_t)(n * t * f));
    if (fread(x, sizeof(float), (size_t)(n * t * f), in) != (size_t)(n * t * f)) {{
        return 3;
    }}
    seconds = atof(argv[2]);
    start = now();
    do {{
        for (i = 0; i < n; ++i) {{
            {p}_reset(&state);
            for (j = 0; j < t; ++j) {{
                {p}_step(&state, x + (i * t + j) * f);
            }}
            sink += (double)state.s[0];
        }}
        frames += n * t;
    }} while (now() - start < seconds);
    step_s = (now() - start) / (double)frames;
    start = now();
    do {{
        for (i = 0; i < 1000; ++i) {{
            {p}_logits(&state, out);
            sink += (double)out[i % {P}_CLASSES];
        }}
        calls += 1000;
    }} while (now() - start < seconds / 4);
    head_s = (now() - start) / (double)calls;
    printf("%.6g %.6g\\n", 1e9 * step_s, 1e9 * head_s);
    fprintf(stderr, "%g\\n", sink);
    free(x);
    return 0;
}}
"""


# ----------------------------------------------------------------------------- the GRU peer


class GRUClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.GRU(FEATURES, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(x)
        return self.head(h[-1])


def _array(name: str, values) -> str:
    flat = np.asarray(values, dtype=np.float64).ravel()
    body = ",\n".join(
        "    " + ", ".join(float_literal(v) for v in flat[i : i + 6])
        for i in range(0, len(flat), 6)
    )
    return f"static const float {name}[{len(flat)}] = {{\n{body}\n}};\n"


def gru_c(model: GRUClassifier, p: str = "gru") -> tuple[str, str]:
    """The GRU as the generator writes FastGRNN: same API, the same matvec and gate functions.

    torch's GRU: r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 - z) ⊙ n + z ⊙ h.
    """
    P = p.upper()
    g = model.rnn
    header = f"""#ifndef {P}_H
#define {P}_H
#include <stdint.h>
#define {P}_FEATURES {FEATURES}
#define {P}_HIDDEN {HIDDEN}
#define {P}_CLASSES {CLASSES}
typedef float {p}_input_t;
typedef float {p}_logit_t;
typedef struct {{
    float s[{P}_HIDDEN];
}} {p}_state;
void {p}_reset({p}_state *state);
void {p}_step({p}_state *state, const float x[{P}_FEATURES]);
void {p}_logits(const {p}_state *state, float out[{P}_CLASSES]);
#endif
"""
    arrays = "".join(
        _array(f"{p}_{name}", tensor.detach())
        for name, tensor in (
            ("w_ih", g.weight_ih_l0),
            ("w_hh", g.weight_hh_l0),
            ("b_ih", g.bias_ih_l0),
            ("b_hh", g.bias_hh_l0),
            ("head", model.head.weight),
            ("head_bias", model.head.bias),
        )
    )
    source = f"""#include "{p}.h"
#include <math.h>

{arrays}
{FLOAT_HELPERS.format(p=p)}
{EXACT_GATES.format(p=p)}
void {p}_reset({p}_state *state)
{{
    int i;
    for (i = 0; i < {P}_HIDDEN; ++i) {{
        state->s[i] = 0.0f;
    }}
}}

void {p}_step({p}_state *state, const float x[{P}_FEATURES])
{{
    float gi[3 * {P}_HIDDEN], gh[3 * {P}_HIDDEN];
    int i;
    {p}_matvec({p}_w_ih, 3 * {P}_HIDDEN, {P}_FEATURES, x, gi, 0);
    {p}_matvec({p}_w_hh, 3 * {P}_HIDDEN, {P}_HIDDEN, state->s, gh, 0);
    for (i = 0; i < {P}_HIDDEN; ++i) {{
        float r = {p}_sigmoid(gi[i] + {p}_b_ih[i] + gh[i] + {p}_b_hh[i]);
        float z = {p}_sigmoid(gi[{HIDDEN} + i] + {p}_b_ih[{HIDDEN} + i]
                              + gh[{HIDDEN} + i] + {p}_b_hh[{HIDDEN} + i]);
        float n = {p}_tanh(gi[{2 * HIDDEN} + i] + {p}_b_ih[{2 * HIDDEN} + i]
                           + r * (gh[{2 * HIDDEN} + i] + {p}_b_hh[{2 * HIDDEN} + i]));
        state->s[i] = (1.0f - z) * n + z * state->s[i];
    }}
}}

void {p}_logits(const {p}_state *state, float out[{P}_CLASSES])
{{
    int i;
    {p}_matvec({p}_head, {P}_CLASSES, {P}_HIDDEN, state->s, out, 0);
    for (i = 0; i < {P}_CLASSES; ++i) {{
        out[i] += {p}_head_bias[i];
    }}
}}
"""
    return header, source


# ----------------------------------------------------------------------------- building


def _build(folder: Path, prefix: str, opt: str) -> Path:
    cc = host_compiler()
    timer = folder / f"{prefix}_timer.c"
    timer.write_text(TIMER_C.format(p=prefix, P=prefix.upper()))
    exe = folder / f"{prefix}_timer{opt}"
    cmd = [cc, *WARNINGS, opt, "-I", str(folder), str(folder / f"{prefix}.c"), str(timer)]
    run_checked([*cmd, "-o", str(exe), "-lm"], f"building {exe.name}")
    return exe


def _sizes(source: Path, state_bytes: int) -> dict:
    cross = cross_compiler()
    compiler, flags, target = (
        (cross, CROSS_M4[1], "cortex-m4") if cross else (host_compiler(), (), "host")
    )
    size = object_size(compiler, source, "-Os", flags)
    return {
        "target": target,
        "flash_bytes": size.flash,
        "ram_bytes": state_bytes + size.ram,
        "stack_bytes": size.stack,
    }


def _write_frames(path: Path, x: np.ndarray) -> None:
    with open(path, "wb") as handle:
        handle.write(np.array(x.shape, np.int32).tobytes())
        handle.write(np.ascontiguousarray(x, np.float32).tobytes())


def _check_gru(folder: Path, model: GRUClassifier, x: torch.Tensor) -> float:
    """max |C GRU - torch.nn.GRU| on x: the peer computes what a GRU computes."""
    from edge_str.export.c.toolchain import build_runner, run_sequences

    runner = build_runner(folder, "gru", False, HIDDEN, CLASSES)
    logits, _, _ = run_sequences(runner, x.numpy())
    with torch.no_grad():
        diff = float(np.abs(logits - model(x).numpy()).max())
    if diff > 1e-4:
        raise RuntimeError(f"the C GRU disagrees with torch.nn.GRU: {diff:.3g}")
    return diff


def run(repeats: int = 15, seconds: float = 0.15) -> dict:
    if host_compiler() is None:
        raise SystemExit("c_inference: no C compiler (gcc, cc or clang); nothing measured")
    torch.manual_seed(0)
    models: dict[str, dict] = {}
    exes: dict[tuple[str, str], Path] = {}
    with tempfile.TemporaryDirectory(prefix="edge_str-c-bench-") as tmp:
        tmp = Path(tmp)
        for name, ranks in (("fastgrnn_compact", DEMO_RANKS), ("fastgrnn_dense", None)):
            model = build_fastgrnn(ranks)
            x = model.normalizer.mean + model.normalizer.std * torch.randn(64, STEPS, FEATURES)
            entry: dict = {"modes": {}}
            for mode in ("float32", "int8", "integer") if ranks else ("float32",):
                folder = tmp / name / mode
                exported = export_c_model(model, folder, x, mode=mode, prefix="m")
                c = exported["c"]
                entry["ranks"] = {k: f"{v['kept']}/{v['full']}" for k, v in c["ranks"].items()}
                entry["macs_per_frame"] = c["macs_per_frame"]
                entry["head_macs"] = c["head_macs"]
                entry["modes"][mode] = {
                    "weight_bytes": c["weight_bytes"],
                    "max_abs_diff_vs_torch": c["modes"][mode]["max_abs_diff_vs_torch"],
                    "top1_agreement_vs_torch": c["modes"][mode]["top1_agreement_vs_torch"],
                    **_sizes(folder / "m.c", c["state_bytes"]),
                }
                if mode == "float32":
                    for opt in OPT_LEVELS:
                        exes[(name, opt)] = _build(folder, "m", opt)
            models[name] = entry
        gru = GRUClassifier().eval()
        folder = tmp / "gru"
        folder.mkdir()
        header, source = gru_c(gru)
        (folder / "gru.h").write_text(header)
        (folder / "gru.c").write_text(source)
        x = torch.randn(16, STEPS, FEATURES)
        models["gru"] = {
            "macs_per_frame": 3 * HIDDEN * (FEATURES + HIDDEN) + 3 * HIDDEN,
            "head_macs": HIDDEN * CLASSES,
            "max_abs_diff_vs_torch": _check_gru(folder, gru, x),
            "modes": {
                "float32": {
                    "weight_bytes": 4 * sum(p.numel() for p in gru.parameters()),
                    **_sizes(folder / "gru.c", 4 * HIDDEN),
                }
            },
        }
        for opt in OPT_LEVELS:
            exes[("gru", opt)] = _build(folder, "gru", opt)

        frames = tmp / "frames.bin"
        _write_frames(frames, np.random.default_rng(0).normal(size=(SEQUENCES, STEPS, FEATURES)))
        times: dict[tuple[str, str], list[float]] = {key: [] for key in exes}
        heads: dict[tuple[str, str], list[float]] = {key: [] for key in exes}
        order = list(exes)
        for _ in range(2):  # warm-up: page in, settle the clock
            for exe in exes.values():
                run_checked([str(exe), str(frames), str(seconds / 3)], exe.name)
        for i in range(repeats):
            for key in order[i % len(order) :] + order[: i % len(order)]:
                out = run_checked(
                    [str(exes[key]), str(frames), str(seconds)], exes[key].name
                ).stdout
                step_ns, head_ns = (float(v) for v in out.split())
                times[key].append(step_ns)
                heads[key].append(head_ns)

    def ratio(a: str, b: str, opt: str) -> float:
        return statistics.median(x / y for x, y in zip(times[(a, opt)], times[(b, opt)]))

    latency = {
        name: {
            opt: {
                "ns_per_frame": statistics.median(times[(name, opt)]),
                "ns_head": statistics.median(heads[(name, opt)]),
            }
            for opt in OPT_LEVELS
        }
        for name in models
    }
    for name, entry in models.items():
        entry["latency"] = latency[name]
    compact, dense = models["fastgrnn_compact"], models["fastgrnn_dense"]
    mac_ratio = compact["macs_per_frame"] / dense["macs_per_frame"]
    vs_gru = {opt: ratio("fastgrnn_compact", "gru", opt) for opt in OPT_LEVELS}
    vs_dense = {opt: ratio("fastgrnn_compact", "fastgrnn_dense", opt) for opt in OPT_LEVELS}
    sizes = compact["modes"]
    over_mac = vs_dense["-Os"] / mac_ratio

    def target(value: float, limit: float) -> dict:
        return {"value": value, "target": limit, "met": value <= limit}

    targets = {
        "compact_vs_gru_O2": target(vs_gru["-O2"], TARGET_VS_GRU),
        "compact_vs_gru_Os": target(vs_gru["-Os"], TARGET_VS_GRU),
        "compact_vs_dense_over_mac_ratio_Os": target(over_mac, TARGET_VS_MAC_RATIO),
        "flash_float32": target(sizes["float32"]["flash_bytes"], TARGET_FLASH_FLOAT),
        "flash_int8": target(sizes["int8"]["flash_bytes"], TARGET_FLASH_INT8),
        "ram": target(sizes["float32"]["ram_bytes"], TARGET_RAM),
    }
    return {
        "shape": {"steps": STEPS, "features": FEATURES, "hidden": HIDDEN, "classes": CLASSES},
        "compiler": Path(host_compiler()).name,
        "cross_compiler": CROSS_M4[0] if cross_compiler() else None,
        "repeats": repeats,
        "models": models,
        "mac_ratio_compact_vs_dense": mac_ratio,
        "c_latency_ratio_vs_gru": vs_gru,
        "c_latency_ratio_vs_dense": vs_dense,
        "targets": targets,
    }


def table(result: dict) -> str:
    lines = [
        "| model | ranks W, U | MACs/frame | ns/frame -O2 | ns/frame -Os | head ns -Os "
        "| flash B (f32 / int8 / integer) | RAM B | stack B |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["models"].items():
        ranks = m.get("ranks", {"W": "-", "U": "-"})
        flash = " / ".join(str(v["flash_bytes"]) for v in m["modes"].values())
        f32, lat = m["modes"]["float32"], m["latency"]
        lines.append(
            f"| {name} | {ranks['W']}, {ranks['U']} | {m['macs_per_frame']:,} "
            f"| {lat['-O2']['ns_per_frame']:.0f} | {lat['-Os']['ns_per_frame']:.0f} "
            f"| {lat['-Os']['ns_head']:.0f} | {flash} | {f32['ram_bytes']} "
            f"| {f32['stack_bytes']} |"
        )
    g, d = result["c_latency_ratio_vs_gru"], result["c_latency_ratio_vs_dense"]
    target = next(iter(result["models"].values()))["modes"]["float32"]["target"]
    lines += [
        "",
        f"compacted / GRU per frame: {g['-O2']:.3f}x at -O2, {g['-Os']:.3f}x at -Os "
        f"(target <= {TARGET_VS_GRU}x)",
        f"compacted / dense per frame: {d['-O2']:.3f}x at -O2, {d['-Os']:.3f}x at -Os; MAC ratio "
        f"{result['mac_ratio_compact_vs_dense']:.3f} (target at -Os <= {TARGET_VS_MAC_RATIO}x it)",
        f"sizes for {target}; targets: "
        + ", ".join(
            f"{k} {'met' if v['met'] else 'NOT met'}" for k, v in result["targets"].items()
        ),
    ]
    return "\n".join(lines)


def main(out_json: Path | None = None, repeats: int = 15, seconds: float = 0.15) -> dict:
    return run_and_report(run, table, out_json, repeats=repeats, seconds=seconds)


if __name__ == "__main__":
    parser = script_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    main(args.out, args.repeats)

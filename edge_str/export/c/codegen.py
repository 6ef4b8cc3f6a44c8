"""C99 source for a lowered FastGRNN (``lower``): NAME.h and NAME.c as strings.

The API (NAME = ``prefix``, P = its upper case):
    typedef struct { P_state_t s[P_HIDDEN]; } NAME_state;      the caller owns it
    void NAME_reset(NAME_state *state);                         s = 0
    void NAME_step(NAME_state *state, const P_input_t x[P_FEATURES]);   one raw frame
    void NAME_logits(const NAME_state *state, P_logit_t out[P_CLASSES]);  once per decision
No heap, no mutable globals (weights are ``static const``), no recursion; the step's scratch is
on the stack. The state is FastGRNN's h / sigmoid(zeta) (see ``export.compact_model``):
    pre = W' (x - mean) + b_z + (ζU) s;  z = sigmoid(pre);  h~ = tanh(pre + b_h - b_z)
    s'  = z ⊙ (s - h~) + κ h~,   κ = 1 + sigmoid(nu) / ζ;   logits = (ζ Wh) s + b
with W' = W diag(1/std), the normaliser folded in (integer mode: W' x + b_z - W' mean, see
``lower``). A product of rank 0
leaves no array and no code; a factored one is two thin products (R then L).
Integer mode computes the same with int8 weights, int16 activations and the piecewise-linear
gates sigmoid_pl(p) = clamp(p/4 + 1/2, 0, 1), tanh_pl(p) = clamp(p, -1, 1) (``lower``); it
assumes the arithmetic right shift of negative integers (what GCC, Clang, Arm and IAR compilers
do; C99 leaves it implementation-defined).

``CCode.weight_bytes`` is the bytes of all ``static const`` arrays: what the header states.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_str.export.c.lower import (
    GATE_FRAC,
    KAPPA_FRAC,
    Chain,
    FloatModel,
    IntegerModel,
    IntMatrix,
    quantize_rows,
)

_KEYWORDS = """auto break case char const continue default do double else enum extern float for
goto if inline int long register restrict return short signed sizeof static struct switch
typedef union unsigned void volatile while _Bool _Complex _Imaginary"""
C_KEYWORDS = frozenset(_KEYWORDS.split())
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CTYPE_BYTES = {"float": 4, "int8_t": 1, "int16_t": 2, "int32_t": 4}
_PER_LINE = {"float": 6, "int8_t": 16, "int16_t": 12, "int32_t": 8}


def valid_prefix(prefix: str) -> bool:
    """A C identifier that is not a keyword and leaves room for the generated names."""
    return bool(IDENTIFIER.match(prefix)) and prefix not in C_KEYWORDS and len(prefix) <= 40


@dataclass
class CCode:
    """The generated pair of files and the figures their header states."""

    prefix: str
    mode: str
    header: str
    source: str
    weight_bytes: int
    state_bytes: int
    arrays: dict[str, int] = field(default_factory=dict)  # name -> bytes


def _c_string(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def float_literal(value: float) -> str:
    text = f"{float(np.float32(value)):.9g}"
    if not any(c in text for c in ".en"):
        text += ".0"
    return text + "f"


class _Emitter:
    """Collects ``static const`` arrays and their sizes."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.lines: list[str] = []
        self.sizes: dict[str, int] = {}
        self.helpers: set[str] = set()  # helpers the code calls (an unused static warns)

    def array(self, ctype: str, name: str, values: np.ndarray, comment: str) -> str:
        full = f"{self.prefix}_{name}"
        flat = np.asarray(values).ravel()
        if ctype == "float":
            items = [float_literal(v) for v in flat]
        else:
            items = [str(int(v)) for v in flat]
        per = _PER_LINE[ctype]
        body = ",\n".join("    " + ", ".join(items[i : i + per]) for i in range(0, len(items), per))
        self.lines += [f"/* {comment} */", f"static const {ctype} {full}[{len(flat)}] = {{", body]
        self.lines += ["};", ""]
        self.sizes[full] = len(flat) * _CTYPE_BYTES[ctype]
        return full


# ----------------------------------------------------------------------------- helpers in C

FLOAT_HELPERS = """\
/* out[i] (+)= sum_j m[i][j] v[j] for a row-major (rows x cols) matrix. */
static void {p}_matvec(const float *m, int rows, int cols, const float *v, float *out,
        int add)
{{
    int i, j;
    for (i = 0; i < rows; ++i) {{
        const float *row = m + i * cols;
        float acc = 0.0f;
        for (j = 0; j < cols; ++j) {{
            acc += row[j] * v[j];
        }}
        out[i] = add ? out[i] + acc : acc;
    }}
}}
"""

# A product with at most this many columns (a factored matrix's left factor: k columns) is
# written out row by row with its k multiply-adds unrolled, in the order of the loop (so the
# same rounding): a loop of k iterations per row costs about as much as its k products.
SHORT_ROWS = 16

# Smooth gates from one expf each: glibc's and newlib's tanhf cost several expf, and
# tanh(p) = 1 - 2 / (1 + e^(2p)) is exact algebra (absolute error ~1e-7 in float32 near 0).
EXACT_GATES = """\
static float {p}_sigmoid(float p)
{{
    return 1.0f / (1.0f + expf(-p));
}}

static float {p}_tanh(float p)
{{
    return 1.0f - 2.0f / (1.0f + expf(2.0f * p));
}}
"""

# |b_h - b_z| up to which e^(-2 (b_h - b_z)) and the shared-exponential gates stay finite
# and accurate in float32 (e^80 ~ 5.5e34); beyond it each gate takes its own expf.
SHARED_EXP_LIMIT = 40.0

_INT8_HELPERS = """\
/* out[i] (+)= scale[i] * sum_j q[i][j] v[j]: int8 weights, one float scale per row. */
static void {p}_matvec_q8(const int8_t *q, const float *scale, int rows, int cols,
        const float *v, float *out, int add)
{{
    int i, j;
    for (i = 0; i < rows; ++i) {{
        const int8_t *row = q + i * cols;
        float acc = 0.0f;
        for (j = 0; j < cols; ++j) {{
            acc += (float)row[j] * v[j];
        }}
        acc *= scale[i];
        out[i] = add ? out[i] + acc : acc;
    }}
}}
"""

_INTEGER_MATVEC16 = """\
/* out[i] = saturate16(requant(sum_j q[i][j] v[j])): a factored product's inner vector. */
static void {p}_matvec16(const int8_t *q, const int32_t *mult, int shift, int rows,
        int cols, const int16_t *v, int16_t *out)
{{
    int i;
    for (i = 0; i < rows; ++i) {{
        int32_t r = {p}_requant({p}_sum(q + i * cols, v, cols), mult[i], shift);
        out[i] = (int16_t)(r > 32767 ? 32767 : (r < -32767 ? -32767 : r));
    }}
}}

"""

_INTEGER_HELPERS = """\
/* (acc * mult + 2^(shift-1)) >> shift, saturated to int32: a rescale by mult / 2^shift. */
static int32_t {p}_requant(int32_t acc, int32_t mult, int shift)
{{
    int64_t r = ((int64_t)acc * mult + ((int64_t)1 << (shift - 1))) >> shift;
    if (r > INT32_MAX) {{
        r = INT32_MAX;
    }} else if (r < INT32_MIN) {{
        r = INT32_MIN;
    }}
    return (int32_t)r;
}}

static int32_t {p}_sum(const int8_t *row, const int16_t *v, int cols)
{{
    int32_t acc = 0;
    int j;
    for (j = 0; j < cols; ++j) {{
        acc += (int32_t)row[j] * v[j];
    }}
    return acc;
}}

/* out[i] (+)= requant(sum_j q[i][j] v[j]) in int32. */
static void {p}_matvec32(const int8_t *q, const int32_t *mult, int shift, int rows,
        int cols, const int16_t *v, int32_t *out, int add)
{{
    int i;
    for (i = 0; i < rows; ++i) {{
        int32_t r = {p}_requant({p}_sum(q + i * cols, v, cols), mult[i], shift);
        out[i] = add ? out[i] + r : r;
    }}
}}
"""


# ----------------------------------------------------------------------------- generation


def _shape_text(chain: Chain) -> str:
    return " x ".join(f"({m.shape[0]} x {m.shape[1]})" for m in chain.matrices)


def _float_products(em: _Emitter, chain: Chain, mode: str, vin: str, out: str, add: int):
    """Arrays of one product and the C lines computing ``out (+)= chain vin``."""
    p = em.prefix
    lines: list[str] = []
    names = ["right", "left"] if chain.kind == "factored" else ["dense"]
    v = vin
    for index, (matrix, role) in enumerate(zip(chain.matrices, names)):
        rows, cols = matrix.shape
        last = index == len(chain.matrices) - 1
        dst = out if last else f"{chain.name.lower()}_inner"
        flag = add if last else 0
        what = f"{chain.name} {role} ({rows} x {cols}), row-major"
        if mode == "float32":
            arr = em.array("float", f"{chain.name}_{role}", matrix, what)
            call = f"    {p}_matvec({arr}, {rows}, {cols}, {v}, {dst}, {flag});"
            sc = None
        else:
            q, scale = quantize_rows(matrix)
            arr = em.array("int8_t", f"{chain.name}_{role}", q, f"{what}, int8")
            sc = em.array("float", f"{chain.name}_{role}_scale", scale, f"{chain.name} row scales")
            call = f"    {p}_matvec_q8({arr}, {sc}, {rows}, {cols}, {v}, {dst}, {flag});"
        if cols <= SHORT_ROWS:
            lines += _unrolled_rows(arr, sc, rows, cols, v, dst, flag, mode)
        else:
            lines.append(call)
            em.helpers.add("matvec")
        v = dst
    return lines


def _unrolled_rows(
    arr: str, scale: str | None, rows: int, cols: int, v: str, dst: str, add: int, mode: str
) -> list[str]:
    """``dst (+)= M v`` for a matrix of few columns, its multiply-adds written out per row."""
    el = (lambda j: f"r[{j}]") if mode == "float32" else (lambda j: f"(float)r[{j}]")
    ctype = "float" if mode == "float32" else "int8_t"
    lines = [
        "    for (i = 0; i < " + str(rows) + "; ++i) {",
        f"        const {ctype} *r = {arr} + i * {cols};",
        f"        float acc = {el(0)} * {v}[0];",
    ]
    lines += [f"        acc += {el(j)} * {v}[{j}];" for j in range(1, cols)]
    if scale is not None:
        lines.append(f"        acc *= {scale}[i];")
    lines += [f"        {dst}[i] = {dst}[i] + acc;" if add else f"        {dst}[i] = acc;", "    }"]
    return lines


def _int_products(em: _Emitter, name: str, mats: list[IntMatrix], vin: str, out: str, add: int):
    p = em.prefix
    lines: list[str] = []
    roles = ["right", "left"] if len(mats) == 2 else ["dense"]
    v = vin
    for matrix, role in zip(mats, roles):
        rows, cols = matrix.q.shape
        what = (
            f"{name} {role} ({rows} x {cols}) int8, Q{matrix.in_frac} in -> Q{matrix.out_frac} out"
        )
        arr = em.array("int8_t", f"{name}_{role}", matrix.q, what)
        mult = em.array("int32_t", f"{name}_{role}_mult", matrix.mult, f"{name} row multipliers")
        if matrix.out_int16:
            dst = f"{name.lower()}_inner"
            lines.append(
                f"    {p}_matvec16({arr}, {mult}, {matrix.shift}, {rows}, {cols}, {v}, {dst});"
            )
        else:
            dst = out
            lines.append(
                f"    {p}_matvec32({arr}, {mult}, {matrix.shift}, {rows}, {cols}, {v}, {dst}, "
                f"{add});"
            )
        v = dst
    return lines


def _header_comment(model: FloatModel, info: dict[str, Any], mode: str, weight_bytes: int) -> str:
    ranks = info["ranks"]
    rank_text = "; ".join(
        f"{name} {r['kept']}/{r['full']} stored {r['stored_as']} {r['shape'][0]}x{r['shape'][1]}"
        for name, r in ranks.items()
    )
    features = info.get("feature_settings")
    if features:
        f = features
        feature_text = "\n".join(
            [
                " * Features (the front end must reproduce them):",
                f" *   sample rate {f['sample_rate']} Hz, window {f['window_ms']:g} ms"
                f" ({f['window_samples']} samples), hop {f['hop_ms']:g} ms"
                f" ({f['hop_samples']} samples),",
                f" *   {f['n_mels']} mel bands, log(mel energy + {f['log_offset']:g}),"
                f" {f['frames']} frames per decision.",
            ]
        )
    else:
        feature_text = " * Features: not recorded (the model was exported without a run)."
    return "\n".join(
        [
            "/*",
            f" * FastGRNN keyword spotter generated by edge_str {info['version']}: C99, {mode}.",
            f" * Ranks: {rank_text}.",
            f" * MACs per frame: {info['macs_per_frame']}; head MACs per decision:"
            f" {info['head_macs']}.",
            f" * Bytes of weights: {weight_bytes} (const arrays, {mode}).",
            feature_text,
            f" * Input: {model.features} raw feature values per frame (normaliser folded in);"
            f" hidden {model.hidden}; {model.classes} classes.",
            f" * Gates: {'piecewise-linear' if mode == 'integer' else model.gates} sigmoid/tanh.",
            " * Use: NAME_reset(&st); NAME_step(&st, frame) for every frame;"
            " NAME_logits(&st, out)\n"
            " *   when a decision is due (the head runs once per decision).",
            " */",
        ]
    ).replace("NAME", info["prefix"])


def generate(
    model: FloatModel,
    mode: str,
    prefix: str,
    info: dict[str, Any],
    integer: IntegerModel | None = None,
) -> CCode:
    """NAME.h and NAME.c for ``mode`` (float32 | int8 | integer; integer needs ``integer``).

    ``info``: "version", "frames", "ranks" (the report's), "macs_per_frame", "head_macs",
    "feature_settings" (or None), "class_names" (or None): what the header states.
    """
    p, P = prefix, prefix.upper()
    em = _Emitter(p)
    h, f, c = model.hidden, model.features, model.classes
    is_int = mode == "integer"
    if is_int and integer is None:
        raise ValueError("integer mode needs an IntegerModel")
    state_t, input_t, logit_t = (
        ("int16_t", "int16_t", "int32_t") if is_int else ("float", "float", "float")
    )
    body: list[str] = []
    scratch = [f"    {'int32_t' if is_int else 'float'} pre[{P}_HIDDEN];"]
    for chain in (model.W, model.U):
        if chain.kind == "factored":
            scratch.append(f"    {input_t} {chain.name.lower()}_inner[{chain.inner}];")

    if is_int:
        assert integer is not None
        sf = integer.state_frac
        bz, bd = integer.bias_gate, integer.bias_delta
        bz_name = em.array("int16_t", "bias_gate", bz.q, f"b_z - W' mean, Q{bz.frac}")
        bd_name = em.array("int16_t", "bias_delta", bd.q, f"b_h - b_z, Q{bd.frac}")
        if integer.W:
            body += _int_products(em, "W", integer.W, "x", "pre", 0)
            body += [
                f"    for (i = 0; i < {P}_HIDDEN; ++i) {{",
                f"        pre[i] += (int32_t){bz_name}[i] * {1 << (GATE_FRAC - bz.frac)};",
                "    }",
            ]
        else:
            body += [
                "    (void)x; /* W has rank 0: the step does not read the input */",
                f"    for (i = 0; i < {P}_HIDDEN; ++i) {{",
                f"        pre[i] = (int32_t){bz_name}[i] * {1 << (GATE_FRAC - bz.frac)};",
                "    }",
            ]
        body += _int_products(em, "U", integer.U, "state->s", "pre", 1)
        one = 1 << GATE_FRAC
        to_state = GATE_FRAC - sf  # Q14 -> Q(sf)
        kappa_shift = KAPPA_FRAC + GATE_FRAC - sf
        ht_s = "t" if to_state == 0 else f"((t + {1 << (to_state - 1)}) >> {to_state})"
        body += [
            f"    for (i = 0; i < {P}_HIDDEN; ++i) {{",
            "        int32_t p = pre[i];",
            f"        int32_t z = (p >> 2) + {one // 2}; /* sigmoid_pl = clamp(p/4 + 1/2, 0, 1) */",
            f"        int32_t t = p + (int32_t){bd_name}[i] * {1 << (GATE_FRAC - bd.frac)};",
            "        int32_t d, s;",
            f"        z = z < 0 ? 0 : (z > {one} ? {one} : z);",
            f"        t = t < -{one} ? -{one} : (t > {one} ? {one} : t); /* tanh_pl = clamp */",
            f"        d = (int32_t)state->s[i] - {ht_s};",
            f"        s = (int32_t)(((int64_t)z * d + {one // 2}) >> {GATE_FRAC})",
            f"            + (int32_t)(((int64_t){integer.kappa} * t + {1 << (kappa_shift - 1)})"
            f" >> {kappa_shift});",
            "        state->s[i] = (int16_t)(s > 32767 ? 32767 : (s < -32767 ? -32767 : s));",
            "    }",
        ]
        head_lines = _int_products(em, "head", integer.head, "state->s", "out", 0)
        hb = em.array(
            "int32_t", "head_bias", integer.head_bias, f"head bias, Q{integer.logit_frac}"
        )
        head_lines += [
            f"    for (i = 0; i < {P}_CLASSES; ++i) {{",
            f"        out[i] += {hb}[i];",
            "    }",
        ]
        helpers = _INTEGER_HELPERS
        if any(len(mats) == 2 for mats in (integer.W, integer.U)):  # unused statics: a warning
            helpers += "\n" + _INTEGER_MATVEC16
    else:
        bz_name = em.array("float", "bias_gate", model.bias_gate_raw, "b_z")
        shared = (
            model.gates == "exact" and float(np.abs(model.bias_delta).max()) <= SHARED_EXP_LIMIT
        )
        if shared:  # tanh(p + d) from sigmoid's e^-p: q = (e^-p)^2 e^-2d, tanh = (1 - q) / (1 + q)
            bd_name = em.array(
                "float", "tanh_scale", np.exp(-2.0 * model.bias_delta), "e^(-2 (b_h - b_z))"
            )
        else:
            bd_name = em.array("float", "bias_delta", model.bias_delta, "b_h - b_z")
        if model.W.kind != "zero":
            mean = em.array("float", "mean", model.mean, "training mean of each feature")
            scratch.append(f"    float xc[{P}_FEATURES];")
            body += [
                f"    for (i = 0; i < {P}_FEATURES; ++i) {{",
                f"        xc[i] = x[i] - {mean}[i]; /* 1/std is folded into W */",
                "    }",
            ]
            body += _float_products(em, model.W, mode, "xc", "pre", 0)
            body += [
                f"    for (i = 0; i < {P}_HIDDEN; ++i) {{",
                f"        pre[i] += {bz_name}[i];",
                "    }",
            ]
        else:
            body += [
                "    (void)x; /* W has rank 0: the step does not read the input */",
                f"    for (i = 0; i < {P}_HIDDEN; ++i) {{",
                f"        pre[i] = {bz_name}[i];",
                "    }",
            ]
        if model.U.kind != "zero":
            body += _float_products(em, model.U, mode, "state->s", "pre", 1)
        if model.gates == "piecewise":
            gate_lines = [
                "        float z = p * 0.25f + 0.5f;",
                "        float t = p + " + bd_name + "[i];",
                "        z = z < 0.0f ? 0.0f : (z > 1.0f ? 1.0f : z);",
                "        t = t < -1.0f ? -1.0f : (t > 1.0f ? 1.0f : t);",
            ]
        elif shared:  # one expf serves both gates (they share W x + U h)
            gate_lines = [
                "        float a = expf(-p);",
                "        float z = 1.0f / (1.0f + a);",
                f"        float q = a * a * {bd_name}[i];",
                "        float t = q > 1e30f ? -1.0f : (1.0f - q) / (1.0f + q);",
            ]
        else:
            gate_lines = [
                f"        float z = {p}_sigmoid(p);",
                f"        float t = {p}_tanh(p + {bd_name}[i]);",
            ]
        body += [
            f"    for (i = 0; i < {P}_HIDDEN; ++i) {{",
            "        float p = pre[i];",
            *gate_lines,
            f"        state->s[i] = z * (state->s[i] - t) + {float_literal(model.kappa)} * t;",
            "    }",
        ]
        head_lines = _float_products(em, model.head, mode, "state->s", "out", 0)
        hb = em.array("float", "head_bias", model.head_bias, "head bias")
        head_lines += [
            f"    for (i = 0; i < {P}_CLASSES; ++i) {{",
            f"        out[i] += {hb}[i];",
            "    }",
        ]
        helpers = ""
        if "matvec" in em.helpers:
            helpers = FLOAT_HELPERS if mode == "float32" else _INT8_HELPERS
        if model.gates == "exact" and not shared:
            helpers += "\n" + EXACT_GATES
    weight_bytes = sum(em.sizes.values())
    state_bytes = h * (2 if is_int else 4)

    names = info.get("class_names")
    guard = f"{P}_H"
    header = [
        _header_comment(model, {**info, "prefix": p}, mode, weight_bytes),
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
        "",
        f"#define {P}_FEATURES {f}",
        f"#define {P}_HIDDEN {h}",
        f"#define {P}_CLASSES {c}",
        f"#define {P}_FRAMES {info['frames']} /* frames per decision, as trained */",
        f"#define {P}_INTEGER {1 if is_int else 0}",
        f"#define {P}_HAS_CLASS_NAMES {1 if names else 0}",
    ]
    if is_int:
        assert integer is not None
        header += [
            f"/* x_int = round(x * 2^{P}_INPUT_FRAC_BITS), saturated to +-32767 */",
            f"#define {P}_INPUT_FRAC_BITS {integer.input_frac}",
            f"#define {P}_STATE_FRAC_BITS {integer.state_frac}",
            f"#define {P}_LOGIT_FRAC_BITS {integer.logit_frac}",
        ]
    header += [
        "",
        f"typedef {input_t} {p}_input_t;",
        f"typedef {logit_t} {p}_logit_t;",
        "",
        f"/* FastGRNN's h / sigmoid(zeta) (h = {model.state_scale:.9g} * s); caller-owned. */",
        "typedef struct {",
        f"    {state_t} s[{P}_HIDDEN];",
        f"}} {p}_state;",
        "",
        f"void {p}_reset({p}_state *state);",
        f"void {p}_step({p}_state *state, const {p}_input_t x[{P}_FEATURES]);",
        f"void {p}_logits(const {p}_state *state, {p}_logit_t out[{P}_CLASSES]);",
    ]
    if names:
        header += [f"extern const char *const {p}_class_names[{P}_CLASSES];"]
    header += ["", f"#endif /* {guard} */", ""]

    source = [
        f"/* Generated by edge_str: see {p}.h. */",
        f'#include "{p}.h"',
        "",
    ]
    if not is_int and model.gates == "exact":
        source += ["#include <math.h>"]
    source += [""]
    if names:
        quoted = ", ".join(_c_string(n) for n in names)
        source += [f"const char *const {p}_class_names[{P}_CLASSES] = {{{quoted}}};", ""]
    source += em.lines
    source += [helpers.format(p=p)]
    source += [
        f"void {p}_reset({p}_state *state)",
        "{",
        "    int i;",
        f"    for (i = 0; i < {P}_HIDDEN; ++i) {{",
        f"        state->s[i] = {'0' if is_int else '0.0f'};",
        "    }",
        "}",
        "",
        f"void {p}_step({p}_state *state, const {p}_input_t x[{P}_FEATURES])",
        "{",
        *scratch,
        "    int i;",
        *body,
        "}",
        "",
        f"void {p}_logits(const {p}_state *state, {p}_logit_t out[{P}_CLASSES])",
        "{",
        "    int i;",
        *head_lines,
        "}",
        "",
    ]
    return CCode(
        prefix=p,
        mode=mode,
        header="\n".join(header),
        source="\n".join(source),
        weight_bytes=weight_bytes,
        state_bytes=state_bytes,
        arrays=dict(em.sizes),
    )

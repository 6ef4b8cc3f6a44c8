"""The compacted FastGRNN's sequence graph with its time loop as one ONNX ``Scan`` (opt-in).

FastGRNN (Kusupati et al., NeurIPS 2018), ranks learned by STR (Kusupati et al., ICML 2020).
Same tensors (same initializer names) and the same ops per step as the unrolled graph that the
TorchScript exporter writes from ``CompactFastGRNN`` (see there for the formulas):

  x̂ = (x - mean) / std;  Pz = x̂ Wᵀ + b_z                      (B, T, H), once
  s_1 = first step on Pz[:, 0] (state 0: no U s, no z ⊙ s): (κ - z) ⊙ h~
  Scan over Pz[:, 1:] along axis 1, state s = h / sigmoid(zeta) (B, H), body = one step:
      pre_z = s (ζU)ᵀ + Pz_t;  z = sigmoid(pre_z);  h~ = tanh(pre_z + (b_h - b_z))
      s' = z ⊙ (s - h~) + κ h~,  κ = 1 + sigmoid(nu) / sigmoid(zeta)
  logits = s_T (ζ Wh)ᵀ + b

Why it exists, and why it is not the default: at batch 1 onnxruntime runs this graph faster
than the unrolled one (0.65-0.85x the time on a 2-core x86 machine: the loop body is 9-10
nodes that stay hot in cache, against ~1,000 distinct nodes), and the file does not grow with
T. At batch 100 it is 3-10% slower (benchmarks.inference), and microcontroller toolchains
(TFLite-Micro via onnx2tf, STM32Cube.AI, CMSIS-NN code generators) handle Scan's subgraph
partially or not at all, so the unrolled straight line stays the default. Needs W of rank > 0
(a model whose W was pruned away ignores its input; export it unrolled).
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from edge_str.errors import EdgeStrError
from edge_str.export.compact_model import CompactFastGRNN, CompactProjection

INPUT, OUTPUT = "features", "logits"


class _Builder:
    """Nodes and initializers of one graph, with fresh names for intermediate values."""

    def __init__(self, prefix: str, initializers: dict[str, np.ndarray]) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.prefix = prefix
        self.count = 0
        self.initializers = initializers  # shared by the loop body (outer-scope values)

    def init(self, name: str, value: torch.Tensor | np.ndarray) -> str:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        self.initializers.setdefault(name, np.asarray(value))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        if out is None:
            out = f"{self.prefix}{self.count}"
            self.count += 1
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def product(self, x: str, proj: CompactProjection, name: str) -> str | None:
        """x Wᵀ with the projection's stored (pre-transposed) factors; None for rank 0."""
        if proj.kind == "dense":
            return self.op("MatMul", x, self.init(f"{name}.weight_t", proj.weight_t))
        if proj.kind == "factored":
            inner = self.op("MatMul", x, self.init(f"{name}.right_t", proj.right_t))
            return self.op("MatMul", inner, self.init(f"{name}.left_t", proj.left_t))
        return None

    def update(self, pre_z: str, s: str | None, out: str | None = None) -> str:
        """s' from pre_z = W x_t + U h + b_z (the same nodes, in the same order, as unrolled)."""
        z = self.op("Sigmoid", pre_z)
        h_tilde = self.op("Tanh", self.op("Add", pre_z, "bias_delta"))
        if s is None:  # s_1 = (κ - z) ⊙ h~
            return self.op("Mul", self.op("Sub", "kappa", z), h_tilde, out=out)
        gated = self.op("Mul", z, self.op("Sub", s, h_tilde))  # z ⊙ (s - h~)
        return self.op("Add", gated, self.op("Mul", "kappa", h_tilde), out=out)


def scan_sequence_graph(
    compact: CompactFastGRNN, steps: int, batch: int | None, opset: int
) -> onnx.ModelProto:
    """Raw features (batch, steps, F) -> logits (batch, C), the time loop as one Scan.

    ``batch`` None makes the batch dimension dynamic. Raises ``EdgeStrError`` when W has rank 0
    or the model's gates are not the exact sigmoid / tanh.
    """
    if compact.W.kind == "zero":
        raise EdgeStrError(
            "--loop scan: W has rank 0 (the logits do not depend on the input); "
            "export the unrolled graph"
        )
    if compact.gates != "exact":  # the loop body is written with Sigmoid / Tanh nodes
        raise EdgeStrError(
            f"--loop scan: the model was trained with {compact.gates} gates; "
            "export the unrolled graph"
        )
    hidden = compact.hidden_size
    inits: dict[str, np.ndarray] = {}
    g = _Builder("_", inits)
    for name in ("mean", "std", "bias_gate", "bias_delta", "kappa"):
        g.init(name, getattr(compact, name))
    x_hat = g.op("Div", g.op("Sub", INPUT, "mean"), "std")
    pz = g.op("Add", g.product(x_hat, compact.W, "W"), "bias_gate")  # (B, T, H)
    first = g.op("Gather", pz, g.init("const0", np.array(0, np.int64)), axis=1)  # (B, H)
    s = g.update(first, None)
    if steps > 1:
        one = g.init("const1", np.array([1], np.int64))
        end = g.init("const2", np.array([steps], np.int64))
        rest = g.op("Slice", pz, one, end, one)  # (B, T - 1, H)
        body = _Builder("_b", inits)
        us = body.product("s", compact.U, "U")  # s (ζU)ᵀ
        pre_z = "pz_t" if us is None else body.op("Add", us, "pz_t")
        body.update(pre_z, "s", out="s_next")
        dims = ["batch" if batch is None else batch, hidden]
        body_graph = helper.make_graph(
            body.nodes,
            "fastgrnn_step",
            [
                helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, dims),
                helper.make_tensor_value_info("pz_t", onnx.TensorProto.FLOAT, dims),
            ],
            [helper.make_tensor_value_info("s_next", onnx.TensorProto.FLOAT, dims)],
        )
        s = g.op("Scan", s, rest, body=body_graph, num_scan_inputs=1, scan_input_axes=[1])
    g.op(
        "Add",
        g.op("MatMul", s, g.init("head_weight_t", compact.head_weight_t)),
        g.init("head_bias", compact.head_bias),
        out=OUTPUT,
    )
    b = "batch" if batch is None else batch
    graph = helper.make_graph(
        g.nodes,
        "fastgrnn_scan",
        [
            helper.make_tensor_value_info(
                INPUT, onnx.TensorProto.FLOAT, [b, steps, compact.input_size]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, [b, compact.num_classes])],
        [numpy_helper.from_array(value, name) for name, value in inits.items()],
    )
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(
        graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets)
    )


def loop_body(model: onnx.ModelProto) -> onnx.GraphProto | None:
    """The Scan body of a graph ``scan_sequence_graph`` wrote, or None (unrolled graph)."""
    for node in model.graph.node:
        if node.op_type == "Scan":
            return helper.get_attribute_value(next(a for a in node.attribute if a.name == "body"))
    return None

"""The export-only compacted FastGRNN: same function as the parametrized model, fewer weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from edge_str.errors import EdgeStrError
from edge_str.export.compact_model import CompactFastGRNNStep, compact_fastgrnn
from edge_str.fastgrnn import FastGRNNClassifier
from edge_str.parametrization import baked_copy

F, H, C, T = 5, 16, 4, 7


def _model(keep_w: int | None, keep_u: int | None, mode: str = "str") -> FastGRNNClassifier:
    torch.manual_seed(0)
    # thresholds far under every sigma: only the ranks zeroed below are pruned
    model = FastGRNNClassifier(F, H, C, w_mode=mode, u_mode=mode, s_init=-30.0).eval()
    with torch.no_grad():
        model.normalizer.set_statistics(torch.randn(F) * 2, torch.rand(F) + 0.5)
        model.rnn.cell.bias_update.normal_()
        model.rnn.cell.bias_gate.normal_()
        for name, keep in (("W", keep_w), ("U", keep_u)):
            if keep is not None:
                getattr(model.rnn.cell, name).parametrizations.sigma.original[keep:] = 0
    return model


def _x(n: int = 9) -> torch.Tensor:
    return torch.randn(n, T, F, generator=torch.Generator().manual_seed(4)) * 3


@pytest.mark.parametrize(
    ("keep_w", "keep_u", "kinds"),
    [
        (2, 3, ("factored", "factored")),
        (5, 16, ("dense", "dense")),  # full rank: k(m+n) >= mn
        (0, 3, ("zero", "factored")),
        (2, 0, ("factored", "zero")),
    ],
)
def test_compact_model_computes_what_the_parametrized_model_does(keep_w, keep_u, kinds):
    model = _model(keep_w, keep_u)
    compact, summary = compact_fastgrnn(model)
    assert (compact.W.kind, compact.U.kind) == kinds
    assert compact.ranks == {"W": keep_w, "U": keep_u}
    assert summary["W"].rank == keep_w and summary["U"].rank == keep_u
    x = _x()
    with torch.no_grad():
        expected, got = model(x), compact(x)
    assert got.shape == (len(x), C)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # Exactly the surviving ranks are stored, sigma folded into the left factor.
    params = {name: tuple(p.shape) for name, p in compact.named_parameters()}
    if kinds[1] == "factored":
        assert params["U.right_t"] == (H, keep_u) and params["U.left_t"] == (keep_u, H)
    if kinds[0] == "zero":
        assert not any(name.startswith("W.") for name in params)


def test_dense_models_compact_to_dense_matrices():
    model = _model(None, None, mode="dense")
    compact, summary = compact_fastgrnn(model)
    assert (compact.W.kind, compact.U.kind) == ("dense", "dense")
    assert summary["U"].rank == H
    with torch.no_grad():
        torch.testing.assert_close(compact(_x()), model(_x()), atol=1e-5, rtol=1e-5)


def test_step_module_over_a_sequence_equals_the_sequence_module():
    model = _model(2, 3)
    compact, _ = compact_fastgrnn(model)
    step = CompactFastGRNNStep(compact)
    x = _x(4)
    s = torch.zeros(4, H)
    with torch.no_grad():
        for t in range(T):
            s, logits = step(x[:, t], s)
        torch.testing.assert_close(logits, compact(x), atol=1e-6, rtol=1e-6)
        # the carried state is FastGRNN's h rescaled: h = sigmoid(zeta) s = state_scale s
        h = model.rnn(model.normalizer(x))
    torch.testing.assert_close(compact.state_scale * s, h, atol=1e-6, rtol=1e-5)


def test_compaction_leaves_the_original_model_untouched():
    model = _model(2, 3)
    x = _x()
    with torch.no_grad():
        before = model(x)
    clone = baked_copy(model)
    compact_fastgrnn(model)
    assert parametrize.is_parametrized(model.rnn.cell.W, "sigma")
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, atol=0, rtol=0)
        torch.testing.assert_close(clone(x), before, atol=0, rtol=0)


def test_refuses_all_ranks_zero_and_other_models():
    with pytest.raises(EdgeStrError, match="nothing to export"):
        compact_fastgrnn(_model(0, 0))
    with pytest.raises(EdgeStrError, match="FastGRNN"):
        compact_fastgrnn(nn.Linear(3, 3))

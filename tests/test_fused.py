"""The fused FastGRNN sequence (edge_str.fused) against the reference Python loop.

Both implementations of the fused node are checked: the PyTorch one ("torch") and the C++ kernel
("cpp", built once per machine into the cache of edge_str.fused_ext; skipped only where there
is no C++ compiler at all).
"""

from __future__ import annotations

import argparse
import math
import shutil

import pytest
import torch
from torch.utils import cpp_extension

from edge_str import fused_ext
from edge_str.commands import train
from edge_str.commands.train import overrides_from_args
from edge_str.config import make_config
from edge_str.errors import EdgeStrError
from edge_str.fastgrnn import FastGRNN, FastGRNNClassifier, fastgrnn_step
from edge_str.fused import fastgrnn_sequence
from edge_str.models import build_model
from edge_str.parametrization import str_parametrizations

TOL = 1e-5  # max abs difference allowed in float32 (outputs and every gradient)


@pytest.fixture(scope="module")
def cpp_available() -> bool:
    if fused_ext.policy() == "off":
        pytest.skip("EDGE_STR_FUSED_EXT=off")
    if shutil.which("c++") is None or not cpp_extension.is_ninja_available():
        pytest.skip("no C++ compiler or no ninja: the fused kernel cannot be built here")
    # The tools are present, so the build must work: a failure here fails the test.
    assert fused_ext.load_extension(), fused_ext.extension_info()["failed"]
    return True


# "cpp" builds the kernel (once per machine): marked slow, so make test-fast skips it.
@pytest.fixture(params=["torch", pytest.param("cpp", marks=pytest.mark.slow)])
def backend(request, monkeypatch) -> str:
    """Select the implementation FastGRNN.forward uses (through EDGE_STR_FUSED_EXT)."""
    if request.param == "cpp":
        request.getfixturevalue("cpp_available")
        monkeypatch.setenv("EDGE_STR_FUSED_EXT", "on")
    else:
        monkeypatch.setenv("EDGE_STR_FUSED_EXT", "off")
    return request.param


def _node_name(backend: str) -> str:
    return "FastGRNNSequenceCppBackward" if backend == "cpp" else "FastGRNNSequenceBackward"


def _reference(wx, u, b_z, b_h, zeta, nu, h):
    for t in range(wx.shape[1]):
        h = fastgrnn_step(wx[:, t], h, u, b_z, b_h, zeta, nu)
    return h


def _bite_thresholds(model: torch.nn.Module) -> None:
    """Set every STR threshold to the median |sigma| so about half of the ranks are zeroed."""
    for _, module, name, p in str_parametrizations(model):
        sigma = module.parametrizations[name].original.detach()
        p.s.data.fill_(math.log(float(sigma.abs().median())))


def _model(mode: str, f: int, h: int, classes: int = 3) -> FastGRNNClassifier:
    ranks = {}
    if mode == "fixed":
        ranks = {"rank_w": max(1, min(f, h) // 2), "rank_u": max(1, h // 3)}
    model = FastGRNNClassifier(f, h, classes, w_mode=mode, u_mode=mode, **ranks)
    with torch.no_grad():  # move zeta, nu and the biases off their symmetric initial values
        model.rnn.cell.zeta.fill_(0.3)
        model.rnn.cell.nu.fill_(-1.5)
        model.rnn.cell.bias_gate.normal_(0.5, 0.5)
        model.rnn.cell.bias_update.normal_(0.0, 0.5)
        model.normalizer.set_statistics(torch.full((f,), 0.1), torch.full((f,), 1.3))
    if mode == "str":
        _bite_thresholds(model)
    return model


def _grads(model, x, y, fused: bool):
    model.zero_grad(set_to_none=True)
    model.rnn.backend = "auto" if fused else "loop"
    x = x.clone().requires_grad_()
    logits = model(x)
    torch.nn.functional.cross_entropy(logits, y).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    grads["x"] = x.grad.clone()
    return logits.detach(), grads


MODES = ["dense", "fixed", "str"]
SHAPES = [(1, 1, 3, 4), (5, 1, 6, 8), (3, 7, 4, 5), (8, 20, 6, 16), (16, 33, 9, 12)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-T{}-F{}-H{}".format(*s))
def test_classifier_outputs_and_all_gradients_match_reference(backend, mode, shape):
    b, t, f, h = shape
    torch.manual_seed(SHAPES.index(shape) * 3 + MODES.index(mode))
    model = _model(mode, f, h)
    x, y = torch.randn(b, t, f) * 2, torch.randint(0, 3, (b,))
    if mode == "str":
        assert model.rnn.cell.U.effective_rank() < h  # the thresholds really cut ranks
    ref_out, ref = _grads(model, x, y, fused=False)
    out, got = _grads(model, x, y, fused=True)
    assert (out - ref_out).abs().max() <= TOL
    assert got.keys() == ref.keys()
    expected = {"rnn.cell.zeta", "rnn.cell.nu", "rnn.cell.bias_gate", "rnn.cell.bias_update", "x"}
    assert expected <= got.keys()
    if mode == "str":
        assert {"rnn.cell.U.parametrizations.sigma.original", "rnn.cell.U.w1"} <= got.keys()
        assert any(name.endswith(".s") for name in got)  # the STR thresholds get gradients
    for name, g in ref.items():
        # A gradient that is not trivially zero (U has none at T = 1: U h_0 = 0 with h_0 = 0).
        assert g.abs().max() > 0 or name.endswith(".s") or (t == 1 and ".U." in name), name
        assert (got[name] - g).abs().max() <= TOL, name


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_initial_state_and_input_gradients(backend, steps):
    torch.manual_seed(steps)
    rnn = FastGRNN(4, 6, w_mode="fixed", u_mode="str", rank_w=2)
    _bite_thresholds(rnn)
    x = torch.randn(3, steps, 4, requires_grad=True)
    h0 = torch.randn(3, 6, requires_grad=True)
    weights = torch.randn(3, 6)
    results = []
    for fused in (False, True):
        rnn.backend = "auto" if fused else "loop"
        out = rnn(x, h0)
        if fused:
            assert type(out.grad_fn).__name__ == _node_name(backend)
        params = [x, h0, *rnn.parameters()]
        results.append((out, torch.autograd.grad((out * weights).sum(), params)))
    (ref_out, ref_grads), (out, grads) = results
    assert (out - ref_out).abs().max() <= TOL
    for g_ref, g in zip(ref_grads, grads, strict=True):
        assert (g - g_ref).abs().max() <= TOL


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 9])
def test_inference_without_grad_matches_reference(backend, steps):
    torch.manual_seed(10 + steps)
    model = _model("str", 5, 7)
    x = torch.randn(4, steps, 5)
    with torch.no_grad():
        model.rnn.backend = "loop"
        ref = model(x)
        model.rnn.backend = "auto"
        out = model(x)
    assert (out - ref).abs().max() <= TOL


@pytest.mark.parametrize("batch_first", [True, False])
def test_gradcheck_float64(backend, batch_first):
    gen = torch.Generator().manual_seed(0)
    b, t, h = 2, 4, 3

    def arg(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).requires_grad_()

    wx = arg(b, t, h) if batch_first else arg(t, b, h)
    args = (wx, arg(h, h, scale=0.5), arg(h), arg(h), arg(1), arg(1), arg(b, h))

    def fn(*a):
        return fastgrnn_sequence(*a, batch_first=batch_first, backend=backend)

    assert type(fn(*args).grad_fn).__name__ == _node_name(backend)
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_direct_call_matches_reference_on_a_long_sequence(backend):
    # Longer and wider than the model tests, with the paper's zeta/nu initialisation.
    gen = torch.Generator().manual_seed(3)
    b, t, h = 12, 60, 24
    wx = torch.randn(b, t, h, generator=gen, requires_grad=True)
    u = (torch.randn(h, h, generator=gen) / math.sqrt(h)).requires_grad_()
    rest = [torch.randn(h, generator=gen).requires_grad_() for _ in range(2)]
    rest += [torch.tensor([1.0], requires_grad=True), torch.tensor([-4.0], requires_grad=True)]
    h0 = torch.randn(b, h, generator=gen, requires_grad=True)
    args = [wx, u, *rest, h0]
    weights = torch.randn(b, h, generator=gen) / b
    ref = _reference(*args)
    ref_grads = torch.autograd.grad((ref * weights).sum(), args)
    out = fastgrnn_sequence(*args, backend=backend)
    grads = torch.autograd.grad((out * weights).sum(), args)
    assert (out - ref).abs().max() <= TOL
    for g_ref, g in zip(ref_grads, grads, strict=True):
        assert (g - g_ref).abs().max() <= TOL


def test_unusable_kernel_falls_back_to_pytorch_path(monkeypatch):
    def broken(verbose):
        raise OSError("no compiler here")

    monkeypatch.setenv("EDGE_STR_FUSED_EXT", "auto")
    monkeypatch.setattr(fused_ext, "_load_or_build", broken)
    monkeypatch.setattr(
        fused_ext, "_state", {"loaded": False, "failed": None, "build_seconds": None}
    )
    rnn = FastGRNN(3, 4)
    x = torch.randn(2, 5, 3)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        out = rnn(x)
    assert type(out.grad_fn).__name__ == "FastGRNNSequenceBackward"
    rnn.backend = "loop"
    assert (out - rnn(x)).abs().max() <= TOL
    monkeypatch.setenv("EDGE_STR_FUSED_EXT", "on")
    monkeypatch.setattr(
        fused_ext, "_state", {"loaded": False, "failed": None, "build_seconds": None}
    )
    with pytest.raises(RuntimeError, match="no compiler here"):
        fused_ext.load_extension()


def test_model_backend_attribute_picks_the_implementation(backend):
    torch.manual_seed(4)
    model = _model("str", 3, 5)
    x, y = torch.randn(2, 6, 3), torch.randint(0, 3, (2,))
    model.rnn.backend = backend
    out = model.rnn(model.normalizer(x))
    assert type(out.grad_fn).__name__ == _node_name(backend)
    ref_out, ref = _grads(model, x, y, fused=False)
    got_out, got = _grads(model, x, y, fused=True)
    assert (got_out - ref_out).abs().max() <= TOL
    assert max((got[n] - g).abs().max() for n, g in ref.items()) <= TOL


def test_backend_and_policy_are_validated(monkeypatch):
    args = [torch.zeros(1, 1, 2), torch.zeros(2, 2), torch.zeros(2), torch.zeros(2)]
    args += [torch.zeros(1), torch.zeros(1), torch.zeros(1, 2)]
    with pytest.raises(ValueError, match="backend"):
        fastgrnn_sequence(*args, backend="cuda-graphs")
    with pytest.raises(ValueError, match="backend"):
        FastGRNN(2, 2, backend="cuda-graphs")
    monkeypatch.setenv("EDGE_STR_FUSED_EXT", "sometimes")
    with pytest.raises(ValueError, match="EDGE_STR_FUSED_EXT"):
        fused_ext.load_extension()


def test_one_backend_setting_reaches_the_model_from_the_config_and_the_cli():
    cfg = make_config("google12", overrides={"model": {"backend": "loop", "hidden": 4}})
    model = build_model(cfg.model, (5, 3), 2)
    assert model.rnn.backend == "loop"
    out = model(torch.randn(2, 5, 3))
    assert "FastGRNNSequence" not in type(out.grad_fn).__name__  # recorded op by op
    with pytest.raises(EdgeStrError, match="unknown backend 'gpu'"):
        make_config("google12", overrides={"model": {"backend": "gpu"}})
    parser = argparse.ArgumentParser()
    train.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--out", "r", "--backend", "torch"])
    assert overrides_from_args(args)["model"]["backend"] == "torch"

import pytest
import torch

from edge_str import soft_threshold
from edge_str.soft_threshold import threshold_function


@pytest.mark.parametrize("g", ["sigmoid", "exp"])
def test_matches_elementwise_definition(g):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(7, 5, generator=gen)
    s = torch.randn(7, 1, generator=gen) - 1.0
    out = soft_threshold(w, s, g)
    gfun = {"sigmoid": lambda v: 1 / (1 + torch.exp(-v)), "exp": torch.exp}[g]
    for i in range(7):
        t = float(gfun(s[i, 0]))
        for j in range(5):
            x = float(w[i, j])
            expected = 0.0 if abs(x) <= t else (abs(x) - t) * (1 if x > 0 else -1)
            assert float(out[i, j]) == pytest.approx(expected, abs=1e-6)


def test_values_under_threshold_are_exactly_zero():
    w = torch.tensor([-0.3, -0.1, 0.0, 0.05, 0.2, 0.5])
    out = soft_threshold(w, torch.log(torch.tensor(0.25)), "exp")  # threshold 0.25
    assert out[0].item() == pytest.approx(-0.05)
    assert out[5].item() == pytest.approx(0.25)
    assert (out[1:5] == 0).all()


@pytest.mark.parametrize("g", ["sigmoid", "exp"])
def test_gradcheck_away_from_kinks(g):
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    s = torch.full((6, 1), -1.5, dtype=torch.float64)
    t = threshold_function(g)(s)
    # keep every |w| at least 0.05 away from the threshold so finite differences see no kink
    near = (w.abs() - t).abs() < 0.05
    w = torch.where(near, w + 0.2 * torch.sign(w), w).requires_grad_()
    s = s.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: soft_threshold(a, b, g), (w, s))


def test_gradients_match_paper():
    w = torch.tensor([0.5, -0.5, 0.01, -0.01], requires_grad=True)
    s = torch.tensor(0.0, requires_grad=True)  # exp(0) = 1 > all |w| except none
    s2 = torch.tensor(-2.0, requires_grad=True)  # exp(-2) ~ 0.135
    soft_threshold(w, s2, "exp").sum().backward()
    assert w.grad.tolist() == [1.0, 1.0, 0.0, 0.0]  # 1[|w| > g(s)]
    # d/ds = -sign(w) g'(s) 1[...]; the two active entries have opposite signs: they cancel
    assert s2.grad.item() == pytest.approx(0.0)
    w.grad = None
    soft_threshold(w[:1], s2, "exp").sum().backward()
    assert s2.grad.item() == pytest.approx(-torch.exp(torch.tensor(-2.0)).item())
    assert s.grad is None


def test_unknown_g_is_rejected():
    with pytest.raises(ValueError, match="unknown threshold function"):
        soft_threshold(torch.ones(2), torch.zeros(1), "relu")

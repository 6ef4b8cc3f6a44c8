import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from edge_str import (
    apply_str,
    bake_str,
    new_global_threshold,
    sparsify,
    sparsity_report,
    threshold_parameters,
)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))


def test_output_unchanged_right_after_attaching():
    net = _net()
    x = torch.randn(2, 3, 6, 6)
    before = net(x)
    sparsify(net, g="sigmoid", s_init=-100.0)
    assert torch.equal(net(x), before)  # sigmoid(-100) underflows: nothing is thresholded
    report = sparsity_report(net)
    assert [layer.layer for layer in report.layers] == ["0.weight", "3.weight"]
    assert report.zeros == 0 and report.numel == 8 * 3 * 9 + 5 * 128


def test_weight_decay_on_thresholds_grows_them_and_sparsity_appears():
    torch.manual_seed(0)
    x = torch.randn(256, 20)
    w_true = torch.zeros(20)
    w_true[:4] = torch.tensor([1.0, -2.0, 1.5, 0.7])
    y = x @ w_true
    model = nn.Linear(20, 1, bias=False)
    apply_str(model, "weight", g="sigmoid", s_init=-5.0)
    (s,) = threshold_parameters(model)
    start = s.item()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.05)
    for _ in range(400):
        opt.zero_grad()
        ((model(x).squeeze(1) - y) ** 2).mean().backward()
        opt.step()
    report = sparsity_report(model)
    assert s.item() > start + 1.0  # the decay pulled the threshold up towards s = 0
    assert report.zeros >= 12  # most of the 16 irrelevant weights are exactly zero
    kept = model.weight[0, :4]
    assert (kept != 0).all()  # the informative ones survive


def test_bake_leaves_plain_module_with_same_outputs():
    net = _net()
    sparsify(net, g="sigmoid", s_init=-2.0)  # threshold 0.12: zeros some weights
    x = torch.randn(2, 3, 6, 6)
    before = net(x).detach()
    zeros_before = sparsity_report(net).zeros
    assert zeros_before > 0
    bake_str(net)
    assert not any(parametrize.is_parametrized(m) for m in net.modules())
    assert isinstance(net[0].weight, nn.Parameter)
    assert torch.allclose(net(x), before, atol=1e-6)
    assert int((net[0].weight == 0).sum() + (net[3].weight == 0).sum()) == zeros_before


def test_global_granularity_shares_one_parameter():
    net = _net()
    sparsify(net, granularity="global", s_init=-3.0)
    params = threshold_parameters(net)
    assert len(params) == 1
    assert net[0].parametrizations.weight[0].s is net[3].parametrizations.weight[0].s
    # one Parameter in the optimizer, and both layers see its change
    with torch.no_grad():
        params[0].fill_(-1.0)
    report = sparsity_report(net)
    assert {round(layer.threshold_mean, 4) for layer in report.layers} == {0.2689}


def test_channel_and_weight_granularity_shapes():
    conv = nn.Conv2d(3, 8, 3)
    apply_str(conv, granularity="channel", s_init=-4.0)
    assert conv.parametrizations.weight[0].s.shape == (8, 1, 1, 1)
    lin = nn.Linear(4, 3)
    apply_str(lin, granularity="weight", s_init=-4.0)
    assert lin.parametrizations.weight[0].s.shape == (3, 4)
    with torch.no_grad():
        conv.parametrizations.weight[0].s[0] = 10.0  # sigmoid(10) ~ 1: filter 0 pruned
    assert (conv.weight[0] == 0).all() and (conv.weight[1:] != 0).any()


def test_invalid_uses_are_refused():
    lin = nn.Linear(4, 3)
    with pytest.raises(ValueError, match="granularity"):
        apply_str(lin, granularity="row")
    with pytest.raises(ValueError, match="no tensor"):
        apply_str(lin, "kernel")
    with pytest.raises(ValueError, match="shared="):
        apply_str(lin, granularity="global")
    apply_str(lin)
    with pytest.raises(ValueError, match="already attached"):
        apply_str(lin)


def test_str_on_a_1d_parameter_and_state_dict_roundtrip():
    holder = nn.Module()
    holder.sigma = nn.Parameter(torch.tensor([3.0, 1.0, 0.2, -0.01]))
    apply_str(holder, "sigma", g="exp", s_init=float(torch.log(torch.tensor(0.5))))
    assert torch.allclose(holder.sigma, torch.tensor([2.5, 0.5, 0.0, 0.0]))
    clone = nn.Module()
    clone.sigma = nn.Parameter(torch.zeros(4))
    apply_str(clone, "sigma", g="exp", s_init=0.0)
    clone.load_state_dict(holder.state_dict())
    assert torch.equal(clone.sigma, holder.sigma)


def test_report_renders_a_table():
    net = _net()
    sparsify(net, s_init=-2.0)
    text = str(sparsity_report(net))
    assert text.splitlines()[0].split()[:3] == ["layer", "zeros", "numel"]
    assert text.splitlines()[-1].startswith("total")
    assert sparsity_report(net).to_dict()["numel"] == 8 * 3 * 9 + 5 * 128
    assert new_global_threshold(-1.0).shape == (1,)

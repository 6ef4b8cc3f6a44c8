"""STR and GMP on the CNNs: which layers, threshold sharing per granularity, the GMP cubic
schedule, masks under optimizer steps, budget transfer, checkpoint round trips, baking."""

import json

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from edge_str.cnn import build_cnn_network
from edge_str.cnn.sparsity import (
    GMPController,
    STRController,
    bake_sparsity,
    cubic_sparsity,
    mask_parametrizations,
    overall_sparsity,
    prepare_sparsity,
    prunable_layers,
)
from edge_str.config import ModelConfig
from edge_str.errors import EdgeStrError
from edge_str.models import build_model
from edge_str.parametrization import baked_copy, str_parametrizations, threshold_parameters

SMALL = {
    "dscnn": ((99, 32), 12, {"width": 0.125}),
    "resnet18": ((8, 8, 1), 10, {"arch": "resnet", "depth": 18, "width": 0.125}),
    "resnet50": ((8, 8, 1), 10, {"arch": "resnet", "depth": 50, "width": 0.0625}),
    "mobilenetv1": ((8, 8, 1), 10, {"width": 0.125}),
}


def _build(name, **overrides):
    shape, classes, kwargs = SMALL[name]
    kwargs = {"arch": name, **kwargs, **overrides}
    cfg = ModelConfig(**kwargs)
    return build_model(cfg, shape, classes), cfg


def _n_conv_linear(model):
    return sum(1 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


@pytest.mark.parametrize("name", list(SMALL))
def test_str_on_every_conv_and_linear_but_first_and_last(name):
    model, cfg = _build(name)
    controller = prepare_sparsity(model, cfg)  # finds what build_model attached
    assert isinstance(controller, STRController)
    attached = [path for path, _, tensor, _ in str_parametrizations(model)]
    layers = [path for path, _ in prunable_layers(model)]
    assert len(attached) == _n_conv_linear(model) - 2 == len(controller.layers)
    assert layers[0] == "stem.conv" and layers[-1] == "head"
    assert attached == layers[1:-1]
    # one threshold per layer, g = sigmoid, started at cnn_s_init
    thresholds = threshold_parameters(model)
    assert len(thresholds) == len(attached)
    assert all(t.shape == (1,) and t.item() == cfg.cnn_s_init for t in thresholds)
    assert {p.g for _, _, _, p in str_parametrizations(model)} == {"sigmoid"}

    everything, _ = _build(name, sparsify_first_last=True)
    assert len(list(str_parametrizations(everything))) == _n_conv_linear(everything)


def test_granularities_share_or_split_thresholds():
    model, _ = _build("mobilenetv1", str_granularity="global")
    found = list(str_parametrizations(model))
    assert len(found) == _n_conv_linear(model) - 2
    assert len({id(p.s) for _, _, _, p in found}) == 1
    assert len(threshold_parameters(model)) == 1 and threshold_parameters(model)[0].shape == (1,)

    model, _ = _build("mobilenetv1", str_granularity="channel", sparsify_first_last=True)
    for _, module, _, p in str_parametrizations(model):
        weight = module.parametrizations.weight.original
        if isinstance(module, nn.Conv2d):
            assert p.s.shape == (weight.shape[0], 1, 1, 1)
        else:
            assert p.s.shape == (weight.shape[0], 1)
    assert len(threshold_parameters(model)) == _n_conv_linear(model)

    model, _ = _build("resnet18", str_granularity="weight")
    for _, module, _, p in str_parametrizations(model):
        assert p.s.shape == module.parametrizations.weight.original.shape

    model, _ = _build("resnet18", str_granularity="layer")
    ids = [id(p.s) for _, _, _, p in str_parametrizations(model)]
    assert len(set(ids)) == len(ids)


def test_str_thresholds_zero_weights_and_overall_sparsity():
    model, _ = _build("resnet18", sparsify_first_last=True, cnn_s_init=-100.0)
    assert overall_sparsity(model) == 0.0  # sigmoid(-100) ~ 0: dense at the start
    with torch.no_grad():
        for p in threshold_parameters(model):
            p.fill_(0.0)  # g(0) = 1/2
    raw = [m.parametrizations.weight.original for _, m in prunable_layers(model)]
    expected = sum(int((w.abs() <= 0.5).sum()) for w in raw) / sum(w.numel() for w in raw)
    assert 0.5 < expected < 1.0
    assert overall_sparsity(model) == pytest.approx(expected, abs=1e-12)


def test_gmp_cubic_schedule_and_masks_under_training():
    torch.manual_seed(0)
    model, cfg = _build(
        "resnet18",
        depth=10,
        sparsity="gmp",
        gmp_target=0.8,
        gmp_start_epoch=1,
        gmp_end_fraction=0.6,
        gmp_interval=5,
    )
    controller = prepare_sparsity(model, cfg)
    assert isinstance(controller, GMPController)
    assert controller.targets == dict.fromkeys(controller.layers, 0.8)
    spe, epochs = 10, 10  # t_0 = 10, t_end = 60, Delta_t = 5
    assert controller.schedule(spe, epochs) == (10, 60, 5)
    layer = dict(model.named_modules())["layer2.0.conv1"]
    n = layer.weight.numel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    masked = [m for name, m in prunable_layers(model) if name in controller.layers]
    previous_mask = torch.ones(layer.weight.shape, dtype=torch.bool)
    seen = {}
    for epoch in range(epochs):
        for step in range(spe):
            # a loss whose gradient pulls every weight, pruned or not, away from 0
            optimizer.zero_grad()
            sum(((m.weight - 0.5) ** 2).sum() for m in masked).backward()
            optimizer.step()
            controller.step(epoch, step, spe, epochs)
            t = epoch * spe + step + 1
            mask = layer.parametrizations.weight[0].mask
            assert bool((previous_mask | ~mask).all())  # masks only grow
            assert bool((layer.weight[~mask] == 0).all())  # pruned weights are exactly 0
            previous_mask = mask.clone()
            seen[t] = float((layer.weight == 0).sum()) / n
    # nothing before t_0; the cubic value at every update point t_0 + k Delta_t
    assert all(seen[t] == 0.0 for t in range(1, 10))
    for t in range(10, 60, 5):
        expected = 0.8 * (1 - (1 - (t - 10) / 50) ** 3)
        assert seen[t] == pytest.approx(round(expected * n) / n, abs=1e-9)
        assert cubic_sparsity(t, 10, 60, 0.8) == pytest.approx(expected)
    assert seen[15] == seen[19] and seen[15] < seen[20]  # held between updates
    assert seen[35] == pytest.approx(round(0.8 * (1 - 0.5**3) * n) / n)  # 70% at half-way
    # exactly the target from t_end to the end, in every masked layer
    assert all(seen[t] == pytest.approx(round(0.8 * n) / n) for t in range(60, 101))
    for name, module in prunable_layers(model):
        if name in controller.layers:
            assert int((module.weight == 0).sum()) == round(0.8 * module.weight.numel())
    assert controller.metrics()["gmp_scheduled_sparsity"] == pytest.approx(0.8)
    # first and last layers stay dense, and the pruned network runs on the masked weights
    assert float((model.stem.conv.weight == 0).float().mean()) == 0.0
    model.eval()
    assert torch.isfinite(model(torch.randn(2, 8, 8, 1))).all()


def _fake_str_run(tmp_path, model, layers, sparsify_first=False):
    gen = torch.Generator().manual_seed(1)
    entries = []
    for i, (name, module) in enumerate(prunable_layers(model)):
        sparsified = name in layers or (sparsify_first and i == 0)
        sparsity = float(torch.rand((), generator=gen)) * 0.9 if sparsified else 0.0
        entries.append(
            {
                "layer": name,
                "params": module.weight.numel(),
                "sparsity": sparsity,
                "sparsified": sparsified,
            }
        )
    run = tmp_path / "str_run"
    run.mkdir()
    (run / "final.json").write_text(json.dumps({"task": "digits", "budget": {"layers": entries}}))
    return run, {e["layer"]: e["sparsity"] for e in entries}


def test_budget_transfer_sets_per_layer_targets(tmp_path):
    model, cfg = _build("resnet18", sparsity="gmp")
    layers = prepare_sparsity(model, cfg).layers
    run, budget = _fake_str_run(tmp_path, model, layers)

    model, cfg = _build("resnet18", sparsity="gmp", budget_from=str(run), gmp_end_fraction=0.5)
    controller = prepare_sparsity(model, cfg)
    assert controller.targets == {name: budget[name] for name in layers}
    assert len(set(controller.targets.values())) == len(layers)  # truly non-uniform
    for step in range(4):
        controller.step(step // 2, step % 2, 2, 4)
    modules = dict(model.named_modules())
    for name in layers:
        weight = modules[name].weight
        assert int((weight == 0).sum()) == round(budget[name] * weight.numel())
    # final.json itself is accepted too
    cfg.budget_from = str(run / "final.json")
    assert prepare_sparsity(build_model(cfg, (8, 8, 1), 10), cfg).targets == controller.targets


def test_budget_transfer_rejects_mismatches(tmp_path):
    model, cfg = _build("resnet18", sparsity="gmp")
    layers = prepare_sparsity(model, cfg).layers
    run, _ = _fake_str_run(tmp_path, model, layers, sparsify_first=True)
    with pytest.raises(EdgeStrError, match="sparsify_first_last"):
        prepare_sparsity(*_build("resnet18", sparsity="gmp", budget_from=str(run)))
    # the same budget is fine when the first/last layers are pruned too
    model, cfg = _build("resnet18", sparsity="gmp", budget_from=str(run), sparsify_first_last=True)
    assert prepare_sparsity(model, cfg).targets["head"] == 0.0
    with pytest.raises(EdgeStrError, match="weights here"):  # another width
        prepare_sparsity(*_build("resnet18", sparsity="gmp", budget_from=str(run), width=0.25))
    with pytest.raises(EdgeStrError, match="no layer"):  # another depth
        prepare_sparsity(
            *_build("resnet18", sparsity="gmp", budget_from=str(run), depth=34, width=0.125)
        )
    with pytest.raises(EdgeStrError, match="missing"):
        prepare_sparsity(*_build("resnet18", sparsity="gmp", budget_from=str(tmp_path / "no")))


def test_gmp_resume_from_state_dicts():
    torch.manual_seed(0)
    kwargs = {"sparsity": "gmp", "gmp_target": 0.9, "gmp_interval": 1, "gmp_end_fraction": 1.0}
    model, cfg = _build("dscnn", **kwargs)
    controller = prepare_sparsity(model, cfg)
    for step in range(3):
        controller.step(0, step, 4, 2)
    checkpoint = {"model": model.state_dict(), "sparsity": controller.state_dict()}
    assert any(key.endswith("parametrizations.weight.0.mask") for key in checkpoint["model"])

    resumed, _ = _build("dscnn", **kwargs)
    resumed.load_state_dict(checkpoint["model"])
    resumed_controller = prepare_sparsity(resumed, cfg)
    resumed_controller.load_state_dict(checkpoint["sparsity"])
    assert resumed_controller.current == controller.current
    assert overall_sparsity(resumed) == overall_sparsity(model) > 0
    for c in (controller, resumed_controller):
        for step in range(3, 8):
            c.step(step // 4, step % 4, 4, 2)
        assert c.current == dict.fromkeys(c.layers, 0.9)
    masks = [m.mask for _, _, m in mask_parametrizations(model)]
    resumed_masks = [m.mask for _, _, m in mask_parametrizations(resumed)]
    assert all(torch.equal(a, b) for a, b in zip(masks, resumed_masks))

    str_model, str_cfg = _build("dscnn")
    with pytest.raises(EdgeStrError):
        prepare_sparsity(str_model, str_cfg).load_state_dict(checkpoint["sparsity"])


def test_str_checkpoint_round_trip_and_bake():
    torch.manual_seed(0)
    model, cfg = _build("resnet18", str_granularity="channel", cnn_s_init=-3.0)
    fresh, _ = _build("resnet18", str_granularity="channel", cnn_s_init=-3.0)
    fresh.load_state_dict(model.state_dict())  # build_model attached the same parametrizations
    model.eval()
    fresh.eval()
    x = torch.randn(4, 8, 8, 1)
    assert torch.equal(model(x), fresh(x))
    sparsity = overall_sparsity(model)
    assert sparsity > 0  # sigmoid(-3) = 0.047 zeroes the smallest He-normal weights
    bake_sparsity(fresh)
    assert not any(parametrize.is_parametrized(m) for m in fresh.modules())
    assert threshold_parameters(fresh) == []
    assert overall_sparsity(fresh) == sparsity
    assert torch.allclose(model(x), fresh(x), atol=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [
        {"str_granularity": "layer", "cnn_s_init": -3.0},
        {"str_granularity": "global", "cnn_s_init": -3.0},
        {"sparsity": "gmp", "gmp_target": 0.5},
    ],
)
def test_baked_copy_leaves_the_trained_model_alone(overrides):
    torch.manual_seed(0)
    model, cfg = _build("resnet18", **overrides)
    if cfg.sparsity == "gmp":
        controller = prepare_sparsity(model, cfg)
        controller.prune_to(dict.fromkeys(controller.layers, 0.5))
    model.eval()
    x = torch.randn(4, 8, 8, 1)
    before = model(x)
    sparsity = overall_sparsity(model)
    assert sparsity > 0.05
    copy = baked_copy(model)
    assert not any(parametrize.is_parametrized(m) for m in copy.modules())
    assert overall_sparsity(copy) == sparsity
    assert torch.allclose(copy(x), before, atol=1e-6)
    # the original still carries its STR/masks and computes as before (a deepcopy + bake does not)
    assert parametrize.is_parametrized(model.layer1[0].conv1, "weight")
    assert torch.equal(model(x), before)
    bake_sparsity(model)  # and can still be baked itself
    assert torch.allclose(model(x), before, atol=1e-6)


def test_dense_and_errors():
    model, cfg = _build("resnet18", sparsity="dense")
    controller = prepare_sparsity(model, cfg)
    assert controller.layers == [] and controller.state_dict()["kind"] == "dense"
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    controller.step(0, 0, 1, 1)
    assert controller.metrics()["overall_sparsity"] == 0.0

    network = build_cnn_network(ModelConfig(arch="resnet", depth=10, width=0.125), (8, 8, 1), 10)
    cfg = ModelConfig(arch="resnet", sparsity="gmp")
    assert isinstance(prepare_sparsity(network, cfg), GMPController)  # attaches when missing
    with pytest.raises(EdgeStrError, match="different sparsity"):
        prepare_sparsity(network, ModelConfig(arch="resnet", sparsity="str"))
    for bad in (
        {"sparsity": "l1"},
        {"str_granularity": "block"},
        {"sparsity": "gmp", "gmp_target": 1.5},
        {"sparsity": "gmp", "gmp_end_fraction": 0.0},
    ):
        with pytest.raises(EdgeStrError):
            prepare_sparsity(*_build("resnet18", **bad))
    model, cfg = _build("resnet18", sparsity="gmp", gmp_start_epoch=5, gmp_end_fraction=0.5)
    with pytest.raises(EdgeStrError, match="end after it starts"):
        prepare_sparsity(model, cfg).step(0, 0, 10, 10)


def test_budget_file_errors(tmp_path):
    model, cfg = _build("resnet18", sparsity="gmp")
    path = tmp_path / "final.json"
    for content, message in (
        ("{not json", "not valid JSON"),
        ('{"task": "digits"}', "no per-layer budget"),
        ('{"budget": {"layers": [{"layer": "head"}]}}', "numeric"),
        ('{"budget": {"layers": [{"layer": "head", "sparsity": "x"}]}}', "numeric"),
    ):
        path.write_text(content)
        cfg.budget_from = str(path)
        with pytest.raises(EdgeStrError, match=message):
            prepare_sparsity(model, cfg)

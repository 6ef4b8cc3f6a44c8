"""A few real optimizer steps on the digits task (the trainer comes later): STR with weight decay
learns sparsity while the loss falls; its budget report then drives GMP (budget transfer)."""

import json

import pytest
import torch
from torch import nn

from edge_str.cnn.flops import budget_report
from edge_str.cnn.sparsity import bake_sparsity, overall_sparsity, prepare_sparsity
from edge_str.cnn.storage import weight_storage
from edge_str.config import ModelConfig
from edge_str.data.digits import load_digits_task
from edge_str.models import build_model
from edge_str.parametrization import str_parametrizations, threshold_parameters


@pytest.fixture(scope="module")
def task():
    return load_digits_task()


def _train(task, cfg, weight_decay, epochs=2, batch_size=128, max_steps=10):
    torch.manual_seed(0)
    model = build_model(cfg, task.input_shape, len(task.class_names))
    model.normalizer.set_statistics(task.mean, task.std)
    controller = prepare_sparsity(model, cfg)
    thresholds = threshold_parameters(model)
    threshold_ids = {id(p) for p in thresholds}
    weights = [p for p in model.parameters() if id(p) not in threshold_ids]
    # the same weight decay on weights and thresholds (STR eq. 3)
    optimizer = torch.optim.Adam(
        [{"params": weights}, {"params": thresholds}], lr=1e-2, weight_decay=weight_decay
    )
    losses = []
    for epoch in range(epochs):
        batches = task.train_batches(epoch, batch_size, seed=0)
        for step, (x, y) in zip(range(max_steps), batches):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            controller.step(epoch, step, max_steps, epochs)
            losses.append(loss.item())
    model.eval()
    x, y = task.split_tensors("val")
    with torch.no_grad():
        accuracy = float((model(x).argmax(dim=1) == y).float().mean())
    return model, losses, accuracy


@pytest.mark.slow  # an end-to-end run (three trainings): skipped by make test-fast
def test_str_on_digits_learns_sparsity_with_weight_decay(task, tmp_path):
    cfg = ModelConfig(arch="resnet", depth=10, width=0.125, cnn_s_init=-5.0)
    start = build_model(cfg, task.input_shape, 10)
    initial = overall_sparsity(start)  # sigmoid(-5) = 0.0067 already zeroes a few weights
    assert 0.0 < initial < 0.15

    plain, plain_losses, _ = _train(task, cfg, weight_decay=0.0)
    model, losses, accuracy = _train(task, cfg, weight_decay=1e-3)
    for run in (plain_losses, losses):
        assert sum(run[-3:]) / 3 < 0.3 * sum(run[:3]) / 3  # the loss falls
    assert accuracy > 0.75  # 10 classes: chance is 0.1

    learned = overall_sparsity(model)
    assert learned > 0.25
    assert learned > overall_sparsity(plain) + 0.15  # weight decay drives the sparsity
    for _, _, _, p in str_parametrizations(model):  # every threshold grew from g(s_init)
        assert p.threshold().item() > torch.sigmoid(torch.tensor(-5.0)).item()

    # the learned budget goes to final.json; GMP takes it as per-layer targets
    report = budget_report(model)
    assert report["sparsity"] == pytest.approx(learned)
    assert report["sparse_macs"] < 0.9 * report["dense_macs"]
    (tmp_path / "final.json").write_text(json.dumps({"budget": report}))
    gmp_cfg = ModelConfig(
        arch="resnet", depth=10, width=0.125, sparsity="gmp", budget_from=str(tmp_path)
    )
    gmp, _, gmp_accuracy = _train(task, gmp_cfg, weight_decay=1e-4, epochs=1)
    learned_budget = {e["layer"]: e["sparsity"] for e in report["layers"]}
    for entry in budget_report(gmp)["layers"]:
        n = entry["params"]
        assert entry["nonzero"] == n - round(learned_budget[entry["layer"]] * n)
    assert overall_sparsity(gmp) == pytest.approx(learned, abs=1e-3)
    assert gmp_accuracy > 0.3

    # baking keeps the function and the zeros; sparse storage beats dense
    x, _ = task.split_tensors("test")
    with torch.no_grad():
        before = model(x)
        bake_sparsity(model)
        assert torch.allclose(model(x), before, atol=1e-5)
    assert overall_sparsity(model) == pytest.approx(learned)
    storage = weight_storage(model)
    assert storage["weights"]["best_bytes"] < 0.9 * storage["weights"]["dense_bytes"]

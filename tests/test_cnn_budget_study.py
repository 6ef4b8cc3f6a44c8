"""benchmarks.cnn_budget_study: the uniform GMP target that matches an STR run's MACs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import edge_str.training
from benchmarks import cnn_budget_study
from edge_str.cnn.flops import budget_report
from edge_str.cnn.sparsity import mask_parametrizations
from edge_str.config import ModelConfig
from edge_str.models import build_model


def _pruned_final(cfg: ModelConfig, input_shape, sparsities) -> dict:
    """final.json's "budget" and "macs" of a GMP model whose masks hold ``sparsities`` in turn."""
    torch.manual_seed(0)
    model = build_model(cfg, input_shape, 12)
    masks = list(mask_parametrizations(model))
    for (_, _, mask), sparsity in zip(masks, sparsities * len(masks), strict=False):
        flat = mask.mask.view(-1)
        flat[torch.randperm(flat.numel())[: round(sparsity * flat.numel())]] = False
    report = budget_report(model)
    return {"budget": report, "macs": report["sparse_macs"]}


def test_dscnn_any_budget_costs_the_macs_of_the_uniform_one():
    # DS-CNN-S on Google-12 features: after the strided first conv every depthwise and
    # pointwise layer runs at 50 x 16, so with first/last dense the MACs of the sparsified
    # layers go with their nonzero weights, whatever the per-layer split.
    final = _pruned_final(
        ModelConfig(arch="dscnn", width=0.5, sparsity="gmp"), (99, 32), [0.3, 0.95, 0.6, 0.9]
    )
    layers = [e for e in final["budget"]["layers"] if e["sparsified"]]
    assert len(layers) == 8 and len({e["positions"] for e in layers}) == 1
    assert len({round(e["sparsity"], 2) for e in layers}) == 4  # a non-uniform budget
    target = cnn_budget_study.flops_matched_target(final)
    assert target == pytest.approx(final["budget"]["sparsified_sparsity"], abs=1e-9)
    assert round(target, 6) == round(final["budget"]["sparsified_sparsity"], 6)


def test_resnet_on_digits_budget_and_uniform_macs_differ():
    # The digits ResNet runs layer1 on 8 x 8 and layer4 on 1 x 1: pruning the early (cheap in
    # weights, dear in MACs) layers less than the late ones costs more MACs than uniform.
    cfg = ModelConfig(arch="resnet", depth=10, width=0.125, sparsity="gmp")
    final = _pruned_final(cfg, (8, 8, 1), [0.3, 0.3, 0.3, 0.3, 0.3, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
    sparsified = final["budget"]["sparsified_sparsity"]
    assert cnn_budget_study.flops_matched_target(final) < sparsified - 0.1


@pytest.mark.parametrize(
    ("methods", "trained"),
    [
        (["dense"], ["dense"]),
        (["gmp-uniform"], ["str", "gmp_uniform"]),
        (["str", "gmp-budget"], ["str", "gmp_budget"]),
        (list(cnn_budget_study.METHODS), ["dense", "str", "gmp_uniform", "gmp_budget"]),
    ],
)
def test_methods_selects_the_runs_and_the_table(methods, trained, tmp_path, monkeypatch, capsys):
    cfg = ModelConfig(arch="dscnn", width=0.5, sparsity="gmp")
    final = _pruned_final(cfg, (99, 32), [0.5])
    final.update(
        sparsity=0.4,
        macs_dense=final["budget"]["dense_macs"],
        test_accuracy=0.9,
        val_accuracy=0.8,
        bytes={},
        train_seconds=1.0,
    )
    runs = []

    def fake_train(cfg, resume=False, log=print):
        runs.append(Path(cfg.out).name)
        return final

    monkeypatch.setattr(edge_str.training, "train", fake_train)
    argv = ["study", "--seeds", "0", "--out", str(tmp_path), "--methods", *methods]
    monkeypatch.setattr(sys, "argv", argv)
    cnn_budget_study.main()
    assert runs == trained
    table = capsys.readouterr().out.split("\n\n")[0]
    shown = {line.split(" | ")[0].strip("| ") for line in table.splitlines()[2:]}
    expected = set(methods) | ({"str"} if set(methods) - {"dense"} else set())
    assert shown == expected

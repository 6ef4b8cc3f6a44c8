"""Build the model a config names, for a task's input shape and classes."""

from __future__ import annotations

from torch import nn

from edge_str.config import ModelConfig
from edge_str.families import family_of
from edge_str.fastgrnn import FastGRNNClassifier
from edge_str.lowrank import check_rank, full_rank
from edge_str.validation import check_settings


def build_fastgrnn(
    cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int
) -> FastGRNNClassifier:
    check_settings(cfg, ("model",))
    features = input_shape[-1]
    fixed = cfg.rank_mode == "fixed"
    if fixed:  # the ranks' range depends on the data's feature count: checked here, once
        check_rank(cfg.rank_w, full_rank(cfg.hidden, features), "rank of W")
        check_rank(cfg.rank_u, full_rank(cfg.hidden, cfg.hidden), "rank of U")
    return FastGRNNClassifier(
        features,
        cfg.hidden,
        num_classes,
        w_mode=cfg.rank_mode,
        u_mode=cfg.rank_mode,
        rank_w=cfg.rank_w if fixed else None,
        rank_u=cfg.rank_u if fixed else None,
        s_init=cfg.s_init,
        gates=cfg.gates,
        gate_bias_init=cfg.gate_bias_init,
        update_bias_init=cfg.update_bias_init,
        zeta_init=cfg.zeta_init,
        nu_init=cfg.nu_init,
        backend=cfg.backend,
    )


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The classifier for ``cfg.arch``; its first module normalises raw features."""
    return family_of(cfg.arch).build(cfg, input_shape, num_classes)

"""Build the model a config names, for a task's input shape and classes."""

from __future__ import annotations

from torch import nn

from edge_str.cnn.build import CNN_ARCHS, build_cnn
from edge_str.config import ModelConfig
from edge_str.errors import EdgeStrError
from edge_str.fastgrnn import LOOP_BACKENDS, FastGRNNClassifier
from edge_str.lowrank import RANK_MODES


def build_fastgrnn(
    cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int
) -> FastGRNNClassifier:
    if cfg.rank_mode not in RANK_MODES:
        raise EdgeStrError(f"--rank-mode must be one of {', '.join(RANK_MODES)}")
    if cfg.backend not in LOOP_BACKENDS:
        raise EdgeStrError(f"--backend must be one of {', '.join(LOOP_BACKENDS)}")
    features = input_shape[-1]
    fixed = cfg.rank_mode == "fixed"
    for name, rank, full in (
        ("W", cfg.rank_w, min(cfg.hidden, features)),
        ("U", cfg.rank_u, cfg.hidden),
    ):
        if fixed and rank is not None and not 1 <= rank <= full:
            raise EdgeStrError(f"rank of {name} must be in 1..{full}, got {rank}")
    return FastGRNNClassifier(
        features,
        cfg.hidden,
        num_classes,
        w_mode=cfg.rank_mode,
        u_mode=cfg.rank_mode,
        rank_w=cfg.rank_w if fixed else None,
        rank_u=cfg.rank_u if fixed else None,
        s_init=cfg.s_init,
        backend=cfg.backend,
    )


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The classifier for ``cfg.arch``; its first module normalises raw features."""
    if cfg.arch == "fastgrnn":
        return build_fastgrnn(cfg, input_shape, num_classes)
    if cfg.arch in CNN_ARCHS:
        return build_cnn(cfg, input_shape, num_classes)
    raise EdgeStrError(f"unknown model {cfg.arch!r}")

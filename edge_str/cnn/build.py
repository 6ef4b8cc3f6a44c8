"""Build the CNN a ``ModelConfig`` names (the ``build_model`` dispatch for CNN archs)."""

from __future__ import annotations

from edge_str.cnn.blocks import ImageClassifier
from edge_str.cnn.dscnn import DSCNN
from edge_str.cnn.mobilenet import MobileNetV1
from edge_str.cnn.resnet import ResNet
from edge_str.cnn.sparsity import attach_sparsity
from edge_str.config import ModelConfig
from edge_str.errors import EdgeStrError
from edge_str.families.cnn import CNN_ARCHS
from edge_str.validation import check_settings


def build_cnn_network(
    cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int
) -> ImageClassifier:
    """The dense network of ``cfg.arch`` (no sparsity attached)."""
    if cfg.arch not in CNN_ARCHS:
        raise EdgeStrError(f"unknown CNN {cfg.arch!r}; choose from {', '.join(CNN_ARCHS)}")
    check_settings(cfg, ("model",))  # width, stem, depth, ...: the config's one check
    if len(input_shape) not in (2, 3):
        raise EdgeStrError(
            f"a CNN takes (T, F) features or an (H, W, C) image, not input shape {input_shape}"
        )
    if cfg.arch.startswith("dscnn"):
        size = cfg.arch.partition("-")[2] or "s"
        return DSCNN(input_shape, num_classes, size=size, width=cfg.width)
    if cfg.arch == "resnet":
        return ResNet(input_shape, num_classes, depth=cfg.depth, width=cfg.width, stem=cfg.stem)
    return MobileNetV1(input_shape, num_classes, width=cfg.width, stem=cfg.stem)


def build_cnn(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> ImageClassifier:
    """The classifier ``build_model`` returns for a CNN arch, with its sparsity attached.

    STR parametrizations (``cfg.sparsity == "str"``) or GMP masks ("gmp") are part of the model's
    structure, so a model rebuilt from a run's config loads that run's state_dict.
    """
    model = build_cnn_network(cfg, input_shape, num_classes)
    attach_sparsity(model, cfg)
    return model

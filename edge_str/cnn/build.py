"""Build the CNN a ``ModelConfig`` names (the ``build_model`` dispatch for CNN archs)."""

from __future__ import annotations

from edge_str.cnn.blocks import ImageClassifier
from edge_str.cnn.dscnn import DSCNN
from edge_str.cnn.mobilenet import MobileNetV1
from edge_str.cnn.resnet import RESNET_DEPTHS, STEMS, ResNet
from edge_str.cnn.sparsity import attach_sparsity
from edge_str.config import ModelConfig
from edge_str.errors import EdgeStrError

# arch name -> what it builds; "dscnn" is Hello Edge's DS-CNN-S.
CNN_ARCHS = ("dscnn", "dscnn-m", "dscnn-l", "resnet", "mobilenetv1")


def build_cnn_network(
    cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int
) -> ImageClassifier:
    """The dense network of ``cfg.arch`` (no sparsity attached)."""
    if cfg.arch not in CNN_ARCHS:
        raise EdgeStrError(f"unknown CNN {cfg.arch!r}; choose from {', '.join(CNN_ARCHS)}")
    if not cfg.width > 0:
        raise EdgeStrError(f"width must be positive, got {cfg.width}")
    if cfg.stem not in STEMS:
        raise EdgeStrError(f"stem must be one of {', '.join(STEMS)}, got {cfg.stem!r}")
    if len(input_shape) not in (2, 3):
        raise EdgeStrError(
            f"a CNN takes (T, F) features or an (H, W, C) image, not input shape {input_shape}"
        )
    if cfg.arch.startswith("dscnn"):
        size = cfg.arch.partition("-")[2] or "s"
        return DSCNN(input_shape, num_classes, size=size, width=cfg.width)
    if cfg.arch == "resnet":
        if cfg.depth not in RESNET_DEPTHS:
            depths = ", ".join(map(str, RESNET_DEPTHS))
            raise EdgeStrError(f"ResNet depth must be one of {depths}, got {cfg.depth}")
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

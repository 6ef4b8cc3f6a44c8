"""The CNN family: DS-CNN, ResNet, MobileNetV1 with STR or GMP weight sparsity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_str.defaults import CNN_S_INIT
from edge_str.families.base import ModelFamily, lazy, summary_hooks
from edge_str.parametrization import GRANULARITIES
from edge_str.validation import setting

# arch name -> what it builds (``edge_str.cnn.build``); "dscnn" is Hello Edge's DS-CNN-S.
CNN_ARCHS = ("dscnn", "dscnn-m", "dscnn-l", "resnet", "mobilenetv1")


# edge_str.cnn imports the config, so its constants are read when a config is checked.
def _sparsity_modes() -> tuple[str, ...]:
    from edge_str.cnn.sparsity import SPARSITY_MODES

    return SPARSITY_MODES


def _stems() -> tuple[str, ...]:
    from edge_str.cnn.resnet import STEMS

    return STEMS


def _resnet_depths() -> tuple[int, ...]:
    from edge_str.cnn.resnet import RESNET_DEPTHS

    return tuple(RESNET_DEPTHS)


@dataclass
class CNNConfig:
    """The CNN path's ``model`` settings (fields of ``ModelConfig``; see ``edge_str.config``)."""

    sparsity: str = setting("str", choices=_sparsity_modes)  # str | gmp | dense (CNN weights)
    # thresholds per layer | one global | per channel | per weight
    str_granularity: str = setting("layer", choices=GRANULARITIES)
    cnn_s_init: float = CNN_S_INIT  # g = sigmoid on weights; see edge_str.defaults
    sparsify_first_last: bool = False
    width: float = setting(1.0, above=0)  # CNN width multiplier
    # ResNet depth: 10 | 18 | 34 (BasicBlock), 50 | 101 | 152 (Bottleneck)
    depth: int = setting(18, choices=_resnet_depths)
    # ResNet/MobileNetV1 stem: auto | imagenet | cifar (auto: by image size)
    stem: str = setting("auto", choices=_stems)
    gmp_target: float = setting(0.9, at_least=0, below=1)  # GMP overall target sparsity
    gmp_start_epoch: int = setting(0, at_least=0)
    # GMP reaches its target at this fraction of training
    gmp_end_fraction: float = setting(0.75, above=0, at_most=1)
    # GMP: optimizer steps between mask updates (Delta_t); 0: once per epoch
    gmp_interval: int = setting(0, at_least=0)
    budget_from: str | None = None  # RUN of an STR model whose per-layer sparsities GMP targets


def _method(cfg: Any) -> str:
    return cfg.sparsity


FAMILY = ModelFamily(
    name="CNN",
    archs=CNN_ARCHS,
    config=CNNConfig,
    build=lazy("edge_str.cnn.build:build_cnn"),
    **summary_hooks("cnn"),
    method=_method,
    controller=lazy("edge_str.cnn.sparsity:prepare_sparsity"),
    final_extras=lazy("edge_str.training.summary:cnn_final_extras"),
)

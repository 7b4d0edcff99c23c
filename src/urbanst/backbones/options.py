"""The backbone a model config names, resolved in one place.

A preset's config inherits :class:`BackboneOptions` (overriding a default where the paper differs) and its
``__init__`` calls :func:`config_backbone`, which builds the backbone and writes the resolved source and
layer count back into the config, so that a saved model reloads from any working directory.
"""

from __future__ import annotations

from dataclasses import dataclass

from urbanst.backbones.ablation import depth_of
from urbanst.backbones.loading import Backbone
from urbanst.backbones.saving import build_backbone


@dataclass
class BackboneOptions:
    """The config fields that name a language-model backbone."""

    # None: the embedded MiniLM; else a local checkpoint folder (written back resolved), or an ablation of the
    # language model: "none" (no transformer block) or "random" (randomly initialised; see backbones.ablation)
    backbone: str | None = None
    backbone_layers: int | None = None  # keep the first K blocks; None: the preset's default (written back)
    backbone_policy: str = "frozen"  # frozen | ln_only | pfa:U | last:U | lora:R | full (urbanst.backbones.freezing)


def config_backbone(config: BackboneOptions, default_layers: int | None = None) -> Backbone:
    """The backbone ``config`` names. Without ``backbone_layers``, the first ``default_layers`` blocks (all of
    them if the checkpoint has fewer; every block if ``default_layers`` is None); ``none`` has no block."""
    if config.backbone_layers is None and default_layers is not None:
        config.backbone_layers = min(default_layers, depth_of(config.backbone))
    backbone = build_backbone(config.backbone, layers=config.backbone_layers, policy=config.backbone_policy)
    config.backbone, config.backbone_layers = backbone.source, backbone.num_layers
    return backbone

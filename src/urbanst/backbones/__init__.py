"""Pretrained language-model backbones: loading (:mod:`.loading`), freezing policies
(:mod:`.freezing`), the backbone a model config names (:mod:`.options`) and saving only what trains
(:mod:`.saving`, whose docstring shows how a model uses a backbone)."""

from urbanst.backbones.freezing import (
    POLICY_FORMS,
    FreezingPolicy,
    apply_freezing,
    parameter_groups,
    parse_policy,
    trainable_summary,
    trained_parameter_names,
)
from urbanst.backbones.loading import (
    FAMILIES,
    Backbone,
    backbone_depth,
    build_tiny_backbone,
    load_backbone,
    save_backbone,
)
from urbanst.backbones.options import BackboneOptions, config_backbone
from urbanst.backbones.saving import (
    backbone_state_to_save,
    build_backbone,
    load_adapter,
    save_adapter,
    state_to_save,
)

__all__ = [
    "FAMILIES",
    "POLICY_FORMS",
    "Backbone",
    "BackboneOptions",
    "FreezingPolicy",
    "apply_freezing",
    "parameter_groups",
    "backbone_depth",
    "backbone_state_to_save",
    "build_backbone",
    "build_tiny_backbone",
    "config_backbone",
    "load_adapter",
    "load_backbone",
    "parse_policy",
    "save_adapter",
    "save_backbone",
    "state_to_save",
    "trainable_summary",
    "trained_parameter_names",
]

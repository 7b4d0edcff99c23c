"""Which backbone parameters train, chosen by one string.

| policy   | trains                                                                          |
| -------- | ------------------------------------------------------------------------------- |
| frozen   | nothing                                                                         |
| ln_only  | every LayerNorm/RMSNorm + learned position embeddings (OFA, LLM4HRS)            |
| pfa:U    | ln_only + the whole attention of the last U blocks; MLPs frozen (ST-LLM, UrbanMind) |
| last:U   | the last U blocks whole (attention, MLP, their norms); nothing else (UrbanMind's release) |
| lora:R   | only peft LoRA adapters of rank R (alpha 2R, no dropout) on the attention projections |
| full     | everything                                                                      |

Per family: GPT-2 norms ``ln_1/ln_2/ln_f``, positions ``wpe``, attention ``h.i.attn``
(``c_attn``, ``c_proj``). LLaMA norms ``input_layernorm/post_attention_layernorm/norm``,
no position parameters (rotary), attention ``layers.i.self_attn`` (``q/k/v/o_proj``).
BERT norms every ``LayerNorm`` (embeddings and both per block), positions
``embeddings.position_embeddings``, attention ``encoder.layer.i.attention``
(``self.query/key/value``, ``output.dense``). Token (and BERT token-type) embeddings
train only under ``full``. A backbone without blocks (``none``, :mod:`.ablation`) trains what remains of
its policy: ``pfa:U`` its norms and positions, ``last:U`` nothing.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from torch import nn

from urbanst.backbones.loading import Backbone
from urbanst.errors import UrbanstError
from urbanst.nn.freezing import chosen_names, train_only

POLICY_FORMS = ("frozen", "ln_only", "pfa:U", "last:U", "lora:R", "full")
_PATTERN = re.compile(r"^(frozen|ln_only|full)$|^(pfa|last|lora):([0-9]+)$")


@dataclass(frozen=True)
class FreezingPolicy:
    kind: str  # frozen | ln_only | pfa | last | lora | full
    value: int | None = None  # U for pfa and last, R for lora

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value}"


def parse_policy(policy: str | FreezingPolicy) -> FreezingPolicy:
    if isinstance(policy, FreezingPolicy):
        return policy
    match = _PATTERN.match(policy.strip()) if isinstance(policy, str) else None
    if match is None or (match.group(3) is not None and int(match.group(3)) < 1):
        raise UrbanstError(
            f"unknown freezing policy {policy!r}; valid forms: {', '.join(POLICY_FORMS)} (U, R whole numbers >= 1)"
        )
    if match.group(1):
        return FreezingPolicy(match.group(1))
    return FreezingPolicy(match.group(2), int(match.group(3)))


def parameter_groups(backbone: Backbone) -> dict[str, list[str]]:
    """The backbone's named parameter groups (names as in ``backbone.named_parameters()``; a name ending in
    ``.`` is a prefix): ``norms``, ``positions``, ``attention.i`` (block i's attention), ``block.i`` (block i
    whole), ``lora`` (adapters, once applied) and ``all``."""
    names = [n for n, _ in backbone.named_parameters()]
    groups = {"norms": _norm_names(backbone), "positions": [f"model.{p}" for p in backbone.layout.positions]}
    for i in range(backbone.num_layers):
        groups[f"attention.{i}"] = [f"model.{backbone.layout.blocks}.{i}.{backbone.layout.attention}."]
        groups[f"block.{i}"] = [f"model.{backbone.layout.blocks}.{i}."]
    groups["lora"] = [n for n in names if ".lora_" in n]
    groups["all"] = names
    return groups


def policy_groups(backbone: Backbone, policy: str | FreezingPolicy) -> list[str]:
    """The groups ``policy`` trains."""
    policy = parse_policy(policy)
    if policy.kind in ("frozen", "full", "lora"):
        if policy.kind == "lora":
            _check_lora(backbone, policy)
        return {"frozen": [], "full": ["all"], "lora": ["lora"]}[policy.kind]
    layers = backbone.num_layers
    if policy.kind in ("pfa", "last") and 0 < layers < policy.value:
        raise UrbanstError(f"policy {policy}: the backbone has only {layers} layers")
    last = range(max(0, layers - (policy.value or 0)), layers)
    if policy.kind == "last":
        return [f"block.{i}" for i in last]
    return ["norms", "positions"] + ([f"attention.{i}" for i in last] if policy.kind == "pfa" else [])


def trained_parameter_names(backbone: Backbone, policy: str | FreezingPolicy) -> list[str]:
    """Names (as in ``backbone.named_parameters()``) that ``policy`` trains, in parameter order."""
    names = [n for n, _ in backbone.named_parameters()]
    return chosen_names(names, parameter_groups(backbone), policy_groups(backbone, policy))


def apply_freezing(backbone: Backbone, policy: str | FreezingPolicy) -> Backbone:
    """Set ``requires_grad`` on every backbone parameter as ``policy`` says; returns the backbone.

    ``lora:R`` injects peft LoRA layers once (its base weights stay frozen); after that the
    backbone accepts only the same ``lora:R`` again.
    """
    policy = parse_policy(policy)
    if backbone.peft_model is not None and str(policy) != backbone.policy:
        raise UrbanstError(f"backbone already carries LoRA ({backbone.policy}); build a fresh one for policy {policy}")
    if policy.kind == "lora" and backbone.peft_model is None:
        _inject_lora(backbone, policy.value)
    train_only(backbone, parameter_groups(backbone), policy_groups(backbone, policy))
    backbone.policy = str(policy)
    return backbone


def trainable_summary(module: nn.Module) -> dict[str, int]:
    """Counts of trainable and all parameters (shared tensors counted once)."""
    seen: set[int] = set()
    trainable = total = 0
    for param in module.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return {"trainable": trainable, "total": total}


def lora_config(backbone: Backbone, rank: int):
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules=backbone.layout.lora_targets,
        fan_in_fan_out=backbone.family == "gpt2",  # GPT-2's Conv1D stores weights transposed
        bias="none",
    )


def _inject_lora(backbone: Backbone, rank: int) -> None:
    from peft import get_peft_model

    with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(backbone.model, lora_config(backbone, rank))  # injects into backbone.model in place
    backbone.__dict__["peft_model"] = peft_model


def _check_lora(backbone: Backbone, policy: FreezingPolicy) -> None:
    peft_model = backbone.peft_model
    if peft_model is None:
        raise UrbanstError(f"policy {policy}: no LoRA applied yet; call apply_freezing(backbone, {str(policy)!r}) first")
    rank = peft_model.peft_config["default"].r
    if rank != policy.value:
        raise UrbanstError(f"policy {policy}: the backbone carries LoRA of rank {rank}")


def is_norm(module: nn.Module) -> bool:
    """A LayerNorm or RMSNorm, of torch or of a Hugging Face family."""
    return isinstance(module, nn.LayerNorm) or type(module).__name__.endswith(("LayerNorm", "RMSNorm"))


def _norm_names(backbone: Backbone) -> list[str]:
    return [f"{mod_name}.{p}" for mod_name, module in backbone.named_modules() if is_norm(module)
            for p, _ in module.named_parameters(recurse=False)]

"""Saving only what a backbone trained, and rebuilding it on load.

How a model uses a backbone (st_llm, llm4hrs, urbangpt, urbanmind, airgpt):

1. Its config dataclass inherits :class:`~urbanst.backbones.options.BackboneOptions`, which names the
   backbone and never holds its weights::

       backbone: str | None = None         # "minilm" (None), a local checkpoint folder, a cached hub id,
                                           # or an ablation: "none", "random" (see urbanst.backbones.ablation)
       backbone_layers: int | None = None  # keep the first K blocks (ST-LLM: 6 of GPT-2's 12)
       backbone_policy: str = "frozen"     # frozen | ln_only | pfa:U | lora:R | full

2. ``__init__`` builds it with ``config_backbone``, which writes the resolved source and layer count
   back, so that the saved config reloads from any working directory::

       self.backbone = config_backbone(config, default_layers=2)

3. ``STModel.state_to_save`` (:func:`state_to_save`) leaves the frozen pretrained weights out: it
   saves the model's own tensors plus, for each backbone, ``backbone_state_to_save``: nothing for
   ``frozen``; norms and position embeddings for ``ln_only``; those and the last U blocks'
   attention for ``pfa:U``; the LoRA A/B weights for ``lora:R``; the whole backbone only
   for ``full``. Keys are the model's ``state_dict`` keys (``backbone.model....``).

4. ``STModel.from_pretrained`` then needs nothing more: it calls ``__init__`` (which
   rebuilds the backbone from its path, layers and policy) and ``load_weights`` loads
   exactly the keys ``state_to_save`` names into it.

5. For a copy of LoRA adapters in peft's own format (``adapter_model.safetensors`` +
   ``adapter_config.json``, loadable by ``peft.PeftModel.from_pretrained``), call
   ``save_adapter(self.backbone, directory / "adapter")``; ``load_adapter`` reads one
   back into a backbone built from the same checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from urbanst.backbones.ablation import build_form, split_form
from urbanst.backbones.freezing import apply_freezing, lora_config, parse_policy, trained_parameter_names
from urbanst.backbones.loading import Backbone, load_backbone
from urbanst.errors import UrbanstError
from urbanst.io import atomic_dir

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def build_backbone(
    name_or_path: str | os.PathLike | None = None,
    *,
    layers: int | None = None,
    policy: str = "frozen",
    dtype: torch.dtype = torch.float32,
) -> Backbone:
    """``load_backbone`` (or, for ``none`` and ``random``, :func:`~urbanst.backbones.ablation.build_form`) then
    ``apply_freezing``; a bad policy fails before anything loads."""
    parse_policy(policy)
    load = build_form if split_form(name_or_path)[0] else load_backbone
    return apply_freezing(load(name_or_path, layers=layers, dtype=dtype), policy)


def backbone_state_to_save(backbone: Backbone, policy: str | None = None, *, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors ``policy`` trains (CPU copies), keyed ``prefix`` + their name in ``backbone.state_dict()``.

    ``policy`` defaults to the one applied; naming another is an error (the model's config
    and its backbone disagree).
    """
    if policy is not None and str(parse_policy(policy)) != backbone.policy:
        raise UrbanstError(f"the backbone was frozen with policy {backbone.policy!r}, not {policy!r}")
    if backbone.policy == "full":
        state = backbone.state_dict()
    else:
        params = dict(backbone.named_parameters())
        state = {name: params[name] for name in trained_parameter_names(backbone, backbone.policy)}
    return {prefix + k: v.detach().contiguous().cpu() for k, v in state.items()}


def state_to_save(model: nn.Module) -> dict[str, torch.Tensor]:
    """A model's tensors to save (CPU copies): all of its own, and of every backbone inside it only what its
    freezing policy trains."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    for name, module in model.named_modules():
        if isinstance(module, Backbone):
            prefix = name + "."
            state = {k: v for k, v in state.items() if not k.startswith(prefix)}
            state.update(backbone_state_to_save(module, prefix=prefix))
    return state


def save_adapter(backbone: Backbone, directory: str | os.PathLike) -> Path:
    """Write the LoRA adapters in peft's format: ``adapter_model.safetensors`` + ``adapter_config.json``."""
    if backbone.peft_model is None:
        raise UrbanstError(f"save_adapter: the backbone has policy {backbone.policy!r}, not lora:R")
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        backbone.peft_model.save_pretrained(str(tmp), safe_serialization=True, save_embedding_layers=False)
        (tmp / "README.md").unlink(missing_ok=True)  # peft's empty model-card template
    return directory


def load_adapter(backbone: Backbone, directory: str | os.PathLike) -> Backbone:
    """Load peft-format LoRA adapters (as ``save_adapter`` writes) into ``backbone``; applies ``lora:R`` if needed."""
    from peft import set_peft_model_state_dict
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    weights, config_path = directory / ADAPTER_WEIGHTS, directory / ADAPTER_CONFIG
    if not config_path.is_file():
        raise UrbanstError(f"no {ADAPTER_CONFIG} in {directory}")
    if not weights.is_file():
        hint = " (urbanst never unpickles adapter_model.bin)" if (directory / "adapter_model.bin").exists() else ""
        raise UrbanstError(f"no {ADAPTER_WEIGHTS} in {directory}{hint}")
    try:
        saved = json.loads(config_path.read_text())
        rank = int(saved["r"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise UrbanstError(f"{config_path} is not a peft LoRA config: {err}") from None
    expected = lora_config(backbone, rank)
    wanted = {"peft_type": "LORA", "lora_alpha": expected.lora_alpha, "target_modules": expected.target_modules,
              "fan_in_fan_out": expected.fan_in_fan_out, "use_dora": False}  # fmt: skip
    found = {k: saved.get(k, False if k == "use_dora" else None) for k in wanted}
    differing = {k: v for k, v in found.items() if v != wanted[k]}
    if differing:
        raise UrbanstError(f"{directory}: adapter settings {differing} differ from urbanst's lora:{rank} ({wanted})")
    apply_freezing(backbone, f"lora:{rank}")
    try:
        state = load_file(str(weights))
        result = set_peft_model_state_dict(backbone.peft_model, state)
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise UrbanstError(f"could not load adapters from {weights}: {err}") from None
    missing = [k for k in result.missing_keys if ".lora_" in k]
    if missing or result.unexpected_keys:
        raise UrbanstError(
            f"{weights} does not fit this backbone: missing {missing[:5]}, unexpected {list(result.unexpected_keys)[:5]}"
        )
    return backbone

"""The language-model ablations a config may name instead of a checkpoint: ``none`` and ``random``.

* ``none``: the default checkpoint with every transformer block removed. Its token embeddings (for
  instruction text), position embeddings and the norms outside the blocks stay, so a model reads the same
  inputs and only the blocks between them and its heads are gone (an identity).
* ``random``: the default checkpoint's architecture at the depth the model asks for, every weight drawn
  anew: matrices and embeddings from a normal of the checkpoint's ``initializer_range``, norms at one, biases
  at zero. The draw comes from a generator seeded with :data:`RANDOM_SEED` alone, so a saved model rebuilds
  exactly the same frozen weights and saves only what its policy trains, as with a pretrained checkpoint.

Either form may name another checkpoint after a colon (``random:PATH``, ``none:PATH``): its architecture and
tokenizer are used. The freezing policy applies to what remains (see :mod:`.freezing`).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from urbanst.backbones.freezing import is_norm
from urbanst.backbones.loading import DEFAULT_NAME, Backbone, backbone_depth, read_checkpoint
from urbanst.errors import UrbanstError

FORMS = ("none", "random")
RANDOM_SEED = 0


def split_form(name: str | os.PathLike | None) -> tuple[str | None, str | None]:
    """``(form, checkpoint)``: ``("random", None)`` for ``random``, ``("none", PATH)`` for ``none:PATH``, and
    ``(None, name)`` for a checkpoint itself."""
    text = None if name is None else str(name)
    for form in FORMS:
        if text == form or (text or "").startswith(form + ":"):
            base = text[len(form) + 1:] or None
            return form, None if base == DEFAULT_NAME else base
    return None, text


def depth_of(name: str | os.PathLike | None) -> int:
    """Transformer blocks of what ``name`` names at most: 0 for ``none``."""
    form, base = split_form(name)
    return 0 if form == "none" else backbone_depth(base)


def build_form(name: str, layers: int | None = None, dtype: torch.dtype = torch.float32) -> Backbone:
    """The backbone of an ablation ``name`` (``none`` or ``random``, optionally ``:PATH``); ``layers`` sets the
    depth of ``random`` (default: the checkpoint's) and is ignored by ``none``."""
    form, base = split_form(name)
    if form is None:
        raise UrbanstError(f"{name!r} names no language-model ablation; use one of {', '.join(FORMS)}")
    checkpoint = read_checkpoint(base)
    source = form if base is None else f"{form}:{checkpoint.source}"
    if form == "none":
        checkpoint.keep_blocks(0)
        return checkpoint.backbone(checkpoint.pretrained_model(dtype), source)
    depth = int(checkpoint.config.num_hidden_layers)
    if layers is not None:
        if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= depth:
            raise UrbanstError(f"layers={layers!r}: {checkpoint.name} has {depth} transformer layers; choose 1..{depth}")
        checkpoint.keep_blocks(layers)
    from transformers import AutoModel

    model = AutoModel.from_config(checkpoint.config, **checkpoint.model_options()).to(dtype)
    draw_weights(model, getattr(checkpoint.config, "initializer_range", 0.02), RANDOM_SEED)
    return checkpoint.backbone(model, source)


@torch.no_grad()
def draw_weights(model: nn.Module, std: float, seed: int) -> None:
    """Every parameter of ``model`` drawn again from ``seed`` alone, in parameter order: norms one (weights) and
    zero (biases), other biases zero, everything else normal(0, ``std``)."""
    generator = torch.Generator().manual_seed(seed)
    norms = {id(p) for m in model.modules() if is_norm(m) for p in m.parameters(recurse=False)}
    for name, param in model.named_parameters():
        if id(param) in norms:
            param.fill_(0.0 if name.endswith("bias") else 1.0)
        elif name.endswith("bias"):
            param.zero_()
        else:
            param.copy_(torch.randn(param.shape, generator=generator) * std)


"""Text as a backbone's token embeddings.

:class:`Texts` embeds several texts padded to one length (a mask marks the real tokens), so that a batch
picks its rows by a gather. Token ids are computed once per backbone (a folder without a tokenizer reads
bytes); the embeddings are cached while the backbone's token embeddings are frozen and computed at each call
otherwise, so gradients reach them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def token_ids(backbone, text: str) -> list[int]:
    """``text`` tokenised with the backbone's tokenizer, no special tokens (bytes when it has none)."""
    tok = backbone.tokenizer
    if tok is None:  # no tokenizer in the folder: bytes, folded into the vocabulary
        return [b % backbone.config.vocab_size for b in text.encode()]
    return tok(text, add_special_tokens=False)["input_ids"]


def start_id(backbone) -> int | None:
    """The id that opens a sequence (BERT's [CLS], else the BOS token), None without a tokenizer or one."""
    tok = backbone.tokenizer
    if tok is None:
        return None
    return tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id


class Texts:
    """Texts embedded by a backbone: ``embedded`` gives ``[n, l, D]`` and the mask ``[n, l]`` of real tokens;
    ``start`` opens each text with the backbone's opening token (if it has one)."""

    def __init__(self, texts: Sequence[str], start: bool = False):
        self.texts, self.start = tuple(texts), start
        self._ids: tuple[int, list[list[int]]] | None = None
        self._embedded: tuple[tuple, tuple[torch.Tensor, torch.Tensor]] | None = None

    def ids(self, backbone) -> list[list[int]]:
        if self._ids is None or self._ids[0] != id(backbone):
            opening = [start_id(backbone)] if self.start and start_id(backbone) is not None else []
            self._ids = (id(backbone), [opening + token_ids(backbone, t) for t in self.texts])
        return self._ids[1]

    def embedded(self, backbone, device) -> tuple[torch.Tensor, torch.Tensor]:
        frozen = not backbone.token_embeddings.weight.requires_grad
        key = (id(backbone), str(device))
        if frozen and self._embedded is not None and self._embedded[0] == key:
            return self._embedded[1]
        ids = self.ids(backbone)
        width = max(1, max(len(i) for i in ids))
        padded = torch.tensor([i + [0] * (width - len(i)) for i in ids], device=device)
        mask = torch.tensor([[True] * len(i) + [False] * (width - len(i)) for i in ids], device=device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            out = (backbone.embed_tokens(padded), mask)
        if frozen:
            self._embedded = (key, out)
        return out

    def mean(self, backbone, device) -> torch.Tensor:
        """``[n, D]``: the mean token embedding of each text."""
        embeds, mask = self.embedded(backbone, device)
        weight = mask[..., None].to(embeds.dtype)
        return (embeds * weight).sum(1) / weight.sum(1).clamp(min=1)

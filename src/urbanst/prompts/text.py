"""Instruction text as backbone embeddings: token ids and padded tables of embedded texts.

Models that put text around ST tokens (urbangpt, airgpt) embed each variable piece once as a
table (one row per possible text, padded to one length with a mask) and gather rows per batch.
"""

from __future__ import annotations

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


def text_table(backbone, texts: list[str], embed) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings ``[n, l, D]`` (``embed(ids)``) of texts padded to one length, and their mask ``[n, l]``."""
    ids = [token_ids(backbone, t) for t in texts]
    width = max(1, max(len(i) for i in ids))
    padded = torch.tensor([i + [0] * (width - len(i)) for i in ids])
    mask = torch.tensor([[True] * len(i) + [False] * (width - len(i)) for i in ids])
    return embed(padded), mask

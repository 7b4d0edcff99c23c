"""An instruction to a language model, as the embeddings it reads: UrbanGPT's, AirGPT's and UrbanMind's.

An instruction is a list of pieces:

* fixed text (a ``str``), the same in every sequence;
* a :class:`Table`: one text per row (a region's name, a time span, a weather reading), the row chosen
  per sequence at each call;
* a :class:`Slot`: embeddings the caller gives at each call (ST tokens, learned marker tokens); the k-th
  occurrence of a slot name takes row k of what is given for it.

Each text piece is tokenised and embedded on its own with the backbone's token embeddings
(:class:`~urbanst.parts.prompts.text.Texts`, cached while they are frozen), and a piece that tokenises to
nothing is left out. Tables are padded to one length, padding masked out, so every sequence of a batch has
the same shape and building a batch is a gather. ``start`` opens the sequence with the backbone's opening
token ([CLS] or BOS) when its tokenizer has one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from urbanst.parts.prompts.text import Texts


@dataclass(frozen=True)
class Table:
    name: str
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Slot:
    name: str


Piece = str | Table | Slot


class Embedded(NamedTuple):
    embeds: torch.Tensor  # [*lead, L, D]
    mask: torch.Tensor  # [*lead, L], False on padding
    at: dict[str, list[int]]  # positions of each slot's occurrences


def parse_template(template: str, tables: dict[str, Sequence[str]], slots: Iterable[str], **fill: str) -> list[Piece]:
    """The pieces of ``template``: ``{name}`` of a table in ``tables`` is that table, a marker in ``slots`` (e.g.
    ``<ST_patch>``) a slot, and the text between them is formatted with ``fill``."""
    markers: dict[str, Piece] = {f"{{{name}}}": Table(name, tuple(texts)) for name, texts in tables.items()}
    markers.update({marker: Slot(marker) for marker in slots})
    split = re.split("(" + "|".join(map(re.escape, markers)) + ")", template)
    return [markers[part] if part in markers else part.format(**fill) for part in split if part]


class Instruction:
    """The pieces of an instruction as embeddings (see the module doc); ``text`` shows it in words."""

    def __init__(self, pieces: Sequence[Piece], start: bool = False):
        self.pieces = list(pieces)
        opening = [("", Texts([""], start=True))] if start else []
        self._parts = opening + [(piece, _texts_of(piece)) for piece in self.pieces]

    def text(self, rows: dict[str, int] | None = None) -> str:
        """The instruction in words, each table at its row in ``rows``, each slot as its name."""
        return "".join(_words(piece, rows or {}) for piece in self.pieces)

    def embed(self, backbone, lead: tuple[int, ...], rows: dict[str, torch.Tensor] | None = None,
              slots: dict[str, torch.Tensor] | None = None, *, device, dtype) -> Embedded:
        """``lead`` sequences: each table at ``rows[name]`` (``[*lead]`` row indices), each slot from
        ``slots[name]`` (``[*lead, k, D]``)."""
        rows, slots = rows or {}, slots or {}
        embeds, masks, at, pos = [], [], {}, 0
        for piece, texts in self._parts:
            if isinstance(piece, Slot):
                taken = at.setdefault(piece.name, [])
                embed = slots[piece.name][..., len(taken) : len(taken) + 1, :]
                mask = torch.ones(*lead, 1, dtype=torch.bool, device=device)
                taken.append(pos)
            else:
                table, table_mask = texts.embedded(backbone, device)
                if isinstance(piece, Table):
                    embed, mask = table[rows[piece.name]].to(dtype), table_mask[rows[piece.name]]
                elif texts.ids(backbone)[0]:
                    embed = table[0].to(dtype).expand(*lead, -1, -1)
                    mask = torch.ones(*lead, embed.shape[-2], dtype=torch.bool, device=device)
                else:  # text with no token
                    continue
            embeds.append(embed)
            masks.append(mask)
            pos += embed.shape[-2]
        return Embedded(torch.cat(embeds, -2), torch.cat(masks, -1), at)


def _texts_of(piece: Piece) -> Texts | None:
    if isinstance(piece, Slot):
        return None
    return Texts([piece]) if isinstance(piece, str) else Texts(piece.texts)


def _words(piece: Piece, rows: dict[str, int]) -> str:
    if isinstance(piece, Table):
        return piece.texts[rows[piece.name]]
    return piece.name if isinstance(piece, Slot) else piece

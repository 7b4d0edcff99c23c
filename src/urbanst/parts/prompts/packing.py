"""One instruction per unit of every window, packed into language-model sequences (UrbanGPT's).

A template such as ``{city}, {time}, {task}. {region}: <ST_start><ST_patch><ST_patch><ST_end> <ST_pred>``
(see :mod:`urbanst.models.urbangpt`) is cut at ``{region}``: before it, the window's *prefix* (city, input
span, task: the same for every unit of a window); from it on, the unit's *part*. ``<ST_patch>`` marks where
the unit's projected ST tokens go; the other markers are learned embeddings of this module (the backbone's
vocabulary is never resized).

Packing (``group`` units per LM sequence): the prefix is computed once per group of units of a window,
followed by their parts; a 4-D mask lets each part see the prefix and itself only, the prefix only itself,
and position ids restart after the prefix for every part. Every unit's states are then those of its own
instruction read alone, whatever ``group`` is: for a causal LM (GPT-2, LLaMA) as it would read it, for a
bidirectional one (BERT, MiniLM) with the prefix encoded before, never reading, the unit's part.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from urbanst.errors import UrbanstError
from urbanst.parts.prompts.context import Context
from urbanst.parts.prompts.instruction import Instruction, Slot, parse_template

ST_TOKEN = "<ST_patch>"


class UnitInstructions(nn.Module):
    """Packed LM inputs for every (window, unit) around the units' ST tokens; reads the states back.

    ``markers`` are the template's learned tokens (``special [len(markers), width]``); the one named last is
    the prediction token, whose state is read after the ST tokens'. The backbone is passed to each call and
    never stored here, so its weights are not registered twice."""

    def __init__(self, template: str, markers: tuple[str, ...], num_st_tokens: int, width: int, context: Context):
        super().__init__()
        self.template, self.markers, self.num_st_tokens = template, markers, num_st_tokens
        self.special = nn.Parameter(torch.randn(len(markers), width) * 0.02)
        self.set_context(context)

    def set_context(self, context: Context) -> None:
        self.context = c = context
        tables = {"region": [c.region(u) for u in range(c.num_units)], "time": [c.time(s) for s in range(c.num_slots)]}
        pieces = parse_template(self.template, tables, [*self.markers, ST_TOKEN], city=c.place, task=c.task_text())
        names = [None if isinstance(p, str) else p.name for p in pieces]
        if names.count(ST_TOKEN) != self.num_st_tokens or any(names.count(n) != 1 for n in ("region", "time", *self.markers)):
            raise UrbanstError(f"instruction template {self.template!r} needs {{region}}, {{time}}, "
                               f"{', '.join(self.markers)} once each and {ST_TOKEN} {self.num_st_tokens} times")
        cut = names.index("region")
        if "time" not in names[:cut] or any(isinstance(p, Slot) for p in pieces[:cut]):
            raise UrbanstError(f"instruction template {self.template!r}: {{time}} must come before {{region}}, "
                               "the ST placeholders after it")
        self.prefix, self.part = Instruction(pieces[:cut], start=True), Instruction(pieces[cut:])

    def text(self, unit: int, slot: int) -> str:
        """The instruction of one unit and window, placeholders included."""
        return self.prefix.text({"time": slot}) + self.part.text({"region": unit})

    def run(self, backbone, units: torch.Tensor, slots: torch.Tensor, st: torch.Tensor, group: int,
            max_tokens: int = 65536) -> torch.Tensor:
        """LM states ``[B, U, k + 1, D]`` at the k ST tokens and at the prediction token of every instruction.

        ``units [B, U]``: the units of each window; ``slots [B]``: each window's week slot;
        ``st [B, U, k, D]``: the projected ST tokens; ``group``: units per LM sequence.
        """
        B, U = units.shape
        where = {"device": st.device, "dtype": st.dtype}
        prefix = self.prefix.embed(backbone, (B,), {"time": slots}, **where)
        markers = {m: self.special[i].to(st.dtype).expand(B, U, 1, -1) for i, m in enumerate(self.markers)}
        part = self.part.embed(backbone, (B, U), {"region": units}, {**markers, ST_TOKEN: st}, **where)
        read = part.at[ST_TOKEN] + part.at[self.markers[-1]]
        return read_packed(backbone, prefix.embeds, prefix.mask, part.embeds, part.mask, read, group, max_tokens)


def read_packed(backbone, prefix: torch.Tensor, prefix_mask: torch.Tensor, part: torch.Tensor, part_mask: torch.Tensor,
                read: list[int], group: int, max_tokens: int) -> torch.Tensor:
    """``[B, U, len(read), D]``: the LM states at positions ``read`` of every part ``[B, U, Lr, D]`` after its
    window's prefix ``[B, Lp, D]``, ``group`` parts per LM sequence and ``max_tokens`` tokens per LM call."""
    B, U = part.shape[:2]
    group = max(1, min(group, U))
    pad = -U % group
    if pad:  # whole groups: empty parts, masked out, read by nobody
        part = torch.cat([part, part.new_zeros(B, pad, *part.shape[2:])], 1)
        part_mask = torch.cat([part_mask, part_mask.new_zeros(B, pad, part_mask.shape[2])], 1)
    G, (Lp, Lr) = (U + pad) // group, (prefix.shape[1], part.shape[2])
    L, D = Lp + group * Lr, part.shape[-1]
    seqs = torch.cat([prefix[:, None].expand(-1, G, -1, -1), part.reshape(B, G, group * Lr, D)], 2).reshape(B * G, L, D)
    valid = torch.cat([prefix_mask[:, None].expand(-1, G, -1), part_mask.reshape(B, G, group * Lr)], 2).reshape(B * G, L)
    structure, positions = _structure(Lp, Lr, group, backbone.family != "bert", part.device)
    at = torch.tensor(read, device=part.device)
    at = (Lp + torch.arange(group, device=part.device)[:, None] * Lr + at).flatten()  # [group * len(read)]
    step = max(1, max_tokens // L)
    states = []
    for i in range(0, B * G, step):
        mask = structure & valid[i : i + step, None, None, :]
        hidden = backbone(seqs[i : i + step], mask, positions.expand(mask.shape[0], -1))
        states.append(hidden[:, at])
    return torch.cat(states).reshape(B, G * group, len(read), D)[:, :U]


@functools.lru_cache(maxsize=16)
def _structure(Lp: int, Lr: int, group: int, causal: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Who may attend to whom in a packed sequence ``[1, 1, L, L]``, and the position ids ``[1, L]``."""
    segment = torch.cat([torch.zeros(Lp, dtype=torch.long), torch.arange(1, group + 1).repeat_interleave(Lr)])
    allowed = (segment[None, :] == 0) | (segment[None, :] == segment[:, None])  # the prefix, and one's own part
    if causal:
        allowed &= torch.ones(len(segment), len(segment), dtype=torch.bool).tril()
    allowed |= torch.eye(len(segment), dtype=torch.bool)  # no query is left without a key (padding rows)
    positions = torch.cat([torch.arange(Lp), Lp + torch.arange(Lr).repeat(group)])
    return allowed[None, None].to(device), positions[None].to(device)

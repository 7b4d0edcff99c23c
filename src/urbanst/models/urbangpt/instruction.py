"""UrbanGPT's instruction: a text template (city, time span, task, region) around ST placeholder tokens.

The default template, one instruction per region and window::

    {city}, {time}, {task}. {region}: <ST_start><ST_patch><ST_patch><ST_end> <ST_pred>

for example ``Chicago, 12 days from monday, predict whether theft, battery, assault, criminal
damage occur in the next 1 days. cell 3,5: <ST_start>...``. Everything before ``{region}`` is
the window's *prefix* (city, input span, task: the same for every region of a window); from
``{region}`` on is the region's *part*. ``<ST_patch>`` marks where the projected ST tokens go;
``<ST_start>``, ``<ST_end>`` and ``<ST_pred>`` are learned embeddings of this module (the
backbone's vocabulary is never resized); the state at ``<ST_pred>`` is Γ of UrbanGPT's head.

Text is tokenised once with the backbone's tokenizer, embedded with its (frozen) token
embeddings and cached: the fixed pieces, one entry per region and one per slot of the week,
each variable part padded to one length (padding is masked out), so every instruction has the
same shape and building a batch is a gather. A backbone folder without a tokenizer (tiny test
models) falls back to bytes.

Packing (``group`` regions per LM sequence): the prefix is computed once per group of regions of a
window, followed by their parts; a 4-D mask lets each part see the prefix and itself only, and
position ids restart after the prefix for every part. For a causal LM (GPT-2, LLaMA) this is
exactly the separate instructions; for a bidirectional one (BERT, MiniLM) the prefix does not
read the region parts. ``group=1`` gives plain separate instructions.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import torch
from torch import nn

from urbanst.errors import UrbanstError
from urbanst.prompts.text import text_table, token_ids

DEFAULT_TEMPLATE = "{city}, {time}, {task}. {region}: <ST_start><ST_patch><ST_patch><ST_end> <ST_pred>"
_MARKERS = re.compile(r"(\{region\}|\{time\}|<ST_start>|<ST_patch>|<ST_end>|<ST_pred>)")
SPECIALS = ("<ST_start>", "<ST_end>", "<ST_pred>")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Context:
    """What an instruction describes: the data and the task."""

    city: str
    num_units: int
    grid_shape: tuple[int, int] | None
    steps_per_day: int | None
    attributes: tuple[str, ...]
    task: str
    history: int
    horizon: int

    @classmethod
    def of(cls, source) -> Context:
        """From a model config or a :class:`~urbanst.models.base.DataSpec` (same field names)."""
        grid = tuple(source.grid_shape) if source.grid_shape else None
        return cls(source.city or "a city", source.num_units, grid, source.steps_per_day,
                   tuple(source.attributes), source.task, source.history, source.horizon)

    @property
    def num_slots(self) -> int:
        return 7 * self.steps_per_day if self.steps_per_day else 1

    def region(self, unit: int) -> str:
        if self.grid_shape:
            row, col = divmod(unit, self.grid_shape[1])
            return f"cell {row},{col}"
        return f"zone {unit}"

    def _steps(self, n: int) -> str:
        spd, s = self.steps_per_day, "" if n == 1 else "s"
        if spd == 1:
            return f"{n} day{s}"
        if spd == 24:
            return f"{n} hour{s}"
        if spd and 1440 % spd == 0:
            return f"{n} step{s} of {1440 // spd} minutes"
        return f"{n} step{s}"

    def time(self, slot: int) -> str:
        """The input span starting at ``slot`` of the week (``day * steps_per_day + step``)."""
        spd, span = self.steps_per_day, self._steps(self.history)
        if not spd:
            return span
        day, step = divmod(slot, spd)
        if spd == 1:
            return f"{span} from {DAYS[day]}"
        minutes = step * 1440 // spd
        return f"{span} from {DAYS[day]} {minutes // 60:02d}:{minutes % 60:02d}"

    def task_text(self) -> str:
        names = ", ".join(re.sub(r"\s*\[.*?\]", "", a).strip().lower() for a in self.attributes) or "values"
        if self.task == "classify":
            return f"predict whether {names} occur in the next {self._steps(self.horizon)}"
        return f"predict {names} for the next {self._steps(self.horizon)}"


def week_slots(batch: dict, steps_per_day: int | None) -> torch.Tensor:
    """``[B]`` slot of the week of each window's first input step (see :meth:`Context.time`)."""
    dow = batch["day_of_week"][:, 0]
    if not steps_per_day:
        return torch.zeros_like(dow)
    step = torch.round(batch["time_of_day"][:, 0] * steps_per_day).long() % steps_per_day
    return dow * steps_per_day + step


class Instruction(nn.Module):
    """Builds packed LM inputs for every (window, region) around their ST tokens and reads the states back.

    The backbone is passed to each call and never stored here, so its weights are not registered twice.
    """

    def __init__(self, template: str, num_st_tokens: int, width: int, context: Context):
        super().__init__()
        pieces = [p for p in _MARKERS.split(template) if p]
        counts = {m: pieces.count(m) for m in ("{region}", "{time}", *SPECIALS)}
        if pieces.count("<ST_patch>") != num_st_tokens or any(n != 1 for n in counts.values()):
            raise UrbanstError(
                f"instruction template {template!r} needs {{region}}, {{time}}, <ST_start>, <ST_end> and <ST_pred> "
                f"once each and <ST_patch> {num_st_tokens} times"
            )
        cut = pieces.index("{region}")
        if "{time}" not in pieces[:cut] or any(p in pieces[:cut] for p in (*SPECIALS, "<ST_patch>")):
            raise UrbanstError(f"instruction template {template!r}: {{time}} must come before {{region}}, "
                               "the ST placeholders after it")
        self.template, self.prefix_pieces, self.part_pieces = template, pieces[:cut], pieces[cut:]
        self.special = nn.Parameter(torch.randn(len(SPECIALS), width) * 0.02)
        self.context = context
        self._cache: dict = {}

    def set_context(self, context: Context) -> None:
        self.context = context

    def text(self, unit: int, slot: int) -> str:
        """The instruction of one region and window, placeholders included."""
        c = self.context
        fill = {"{region}": c.region(unit), "{time}": c.time(slot)}
        return "".join(fill.get(p, p) for p in self.prefix_pieces + self.part_pieces).format(city=c.city, task=c.task_text())

    # -- tokens and their embeddings -----------------------------------------------------------
    def _segments(self, backbone, pieces: list[str], embed, first: bool) -> list[tuple[str, object]]:
        """("ids", [l, D]) | ("time" | "region", None) | ("special", i) | ("st", k), in order."""
        c, tok = self.context, backbone.tokenizer
        out: list[tuple[str, object]] = []
        start = None if tok is None else (tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id)
        if first and start is not None:
            out.append(("ids", embed(torch.tensor([start]))))
        patch = 0
        for piece in pieces:
            if piece in ("{region}", "{time}"):
                out.append((piece.strip("{}"), None))
            elif piece in SPECIALS:
                out.append(("special", SPECIALS.index(piece)))
            elif piece == "<ST_patch>":
                out.append(("st", patch))
                patch += 1
            elif ids := token_ids(backbone, piece.format(city=c.city, task=c.task_text())):
                out.append(("ids", embed(torch.tensor(ids))))
        return out

    def _embedded(self, backbone, device) -> dict:
        """Everything text for the current context, embedded (cached while the token embeddings are frozen)."""
        frozen = not backbone.token_embeddings.weight.requires_grad
        key = (self.context, str(device), id(backbone))
        if frozen and self._cache.get("key") == key:
            return self._cache["parts"]
        with torch.set_grad_enabled(not frozen):
            def embed(ids):
                return backbone.embed_tokens(ids.to(device))

            c = self.context
            parts = {
                "prefix": self._segments(backbone, self.prefix_pieces, embed, first=True),
                "part": self._segments(backbone, self.part_pieces, embed, first=False),
                "region": text_table(backbone, [c.region(u) for u in range(c.num_units)], embed),
                "time": text_table(backbone, [c.time(s) for s in range(c.num_slots)], embed),
            }
        if frozen:
            self._cache = {"key": key, "parts": parts}
        return parts

    def _assemble(self, segments, parts, rows: dict, st: torch.Tensor, lead: tuple[int, ...]):
        """Concatenate ``segments`` for ``lead`` rows: embeddings ``[*lead, l, D]``, mask, and offsets of ST/pred."""
        embeds, masks, st_at, pred_at, pos = [], [], [], None, 0
        ones = lambda n: torch.ones(*lead, n, dtype=torch.bool, device=st.device)  # noqa: E731
        for kind, value in segments:
            if kind == "ids":
                e, m = value.to(st.dtype).expand(*lead, -1, -1), ones(value.shape[0])
            elif kind in ("region", "time"):
                table, mask = parts[kind]
                e, m = table[rows[kind]].to(st.dtype), mask.to(st.device)[rows[kind]]
            elif kind == "special":
                e, m = self.special[value].to(st.dtype).expand(*lead, 1, -1), ones(1)
                pred_at = pos if SPECIALS[value] == "<ST_pred>" else pred_at
            else:
                e, m = st[..., value : value + 1, :], ones(1)
                st_at.append(pos)
            embeds.append(e)
            masks.append(m)
            pos += e.shape[-2]
        return torch.cat(embeds, -2), torch.cat(masks, -1), st_at, pred_at

    # -- the LM pass ------------------------------------------------------------------------------
    def run(self, backbone, units: torch.Tensor, slots: torch.Tensor, st: torch.Tensor, group: int,
            max_tokens: int = 65536) -> torch.Tensor:
        """LM states ``[B, U, k + 1, D]`` at the k ST tokens and at ``<ST_pred>`` of every instruction.

        ``units [B, U]``: the regions of each window; ``slots [B]``: each window's week slot;
        ``st [B, U, k, D]``: the projected ST tokens; ``group``: regions per LM sequence.
        """
        parts = self._embedded(backbone, st.device)
        B, U = units.shape
        prefix, prefix_mask, _, _ = self._assemble(parts["prefix"], parts, {"time": slots}, st, (B,))
        part, part_mask, st_at, pred_at = self._assemble(parts["part"], parts, {"region": units}, st, (B, U))
        group = max(1, min(group, U))
        pad = -U % group
        if pad:  # whole groups: empty parts, masked out, read by nobody
            part = torch.cat([part, part.new_zeros(B, pad, *part.shape[2:])], 1)
            part_mask = torch.cat([part_mask, part_mask.new_zeros(B, pad, part_mask.shape[2])], 1)
        G, (Lp, Lr) = (U + pad) // group, (prefix.shape[1], part.shape[2])
        L, D = Lp + group * Lr, part.shape[-1]
        seqs = torch.cat([prefix[:, None].expand(-1, G, -1, -1), part.reshape(B, G, group * Lr, D)], 2).reshape(B * G, L, D)
        valid = torch.cat([prefix_mask[:, None].expand(-1, G, -1), part_mask.reshape(B, G, group * Lr)], 2).reshape(B * G, L)
        structure, positions = self._structure(Lp, Lr, group, backbone.family != "bert", st.device)
        read = torch.tensor([*st_at, pred_at], device=st.device)
        read = (Lp + torch.arange(group, device=st.device)[:, None] * Lr + read).flatten()  # [group * (k + 1)]
        step = max(1, max_tokens // L)
        states = []
        for i in range(0, B * G, step):
            mask = structure & valid[i : i + step, None, None, :]
            hidden = backbone(seqs[i : i + step], mask, positions.expand(mask.shape[0], -1))
            states.append(hidden[:, read])
        states = torch.cat(states).reshape(B, G * group, len(st_at) + 1, D)
        return states[:, :U]

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def _structure(Lp: int, Lr: int, group: int, causal: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Who may attend to whom in a packed sequence ``[1, 1, L, L]``, and the position ids ``[1, L]``."""
        segment = torch.cat([torch.zeros(Lp, dtype=torch.long), torch.arange(1, group + 1).repeat_interleave(Lr)])
        if group == 1 and not causal:  # one plain instruction: everything reads everything
            allowed = torch.ones(len(segment), len(segment), dtype=torch.bool)
        else:  # the prefix reads itself; a part reads the prefix and itself
            allowed = (segment[None, :] == 0) | (segment[None, :] == segment[:, None])
        if causal:
            allowed &= torch.ones(len(segment), len(segment), dtype=torch.bool).tril()
        allowed |= torch.eye(len(segment), dtype=torch.bool)  # no query is left without a key (padding rows)
        positions = torch.cat([torch.arange(Lp), Lp + torch.arange(Lr).repeat(group)])
        return allowed[None, None].to(device), positions[None].to(device)

"""Masks over a grid of tokens ``(Tp, S)`` (time patches x spatial patches) for masked autoencoders (UniST).

A :class:`MaskDraw` for a batch holds:

* ``drop [B, L]`` (L = Tp * S, time-major): tokens removed from the encoder's input and replaced by the mask
  token in the decoder. Every sample of a batch drops the same number of tokens, so the visible tokens stack
  into one tensor.
* ``hide [B, L, C]``: the (token, attribute) pairs whose values the model may not see and must reconstruct.
  A dropped token hides all its attributes; ``attribute`` hides one attribute of tokens that stay visible
  (their other attributes are still seen).

Strategies (ratio r, default 0.5):

``random``    r*L tokens chosen uniformly per sample.
``tube``      r*S spatial patches hidden at every time patch (the same cells throughout).
``block``     a contiguous run of r*S spatial patches in row-major order (a band of the map; the released
              code uses a quarter or a half of the spatial index range), at every time patch; the start is
              random per sample.
``frame``     r*Tp whole time patches chosen per sample.
``temporal``  the last r*Tp time patches (forecasting).
``attribute`` for multi-attribute data: one attribute per sample hidden at r*L token positions; no token is
              dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from urbanst.contract import to_original, to_scaled
from urbanst.errors import UrbanstError


@dataclass
class MaskDraw:
    strategy: str
    drop: torch.Tensor  # [B, L] bool, True = removed from the encoder input
    hide: torch.Tensor  # [B, L, C] bool, True = value hidden and to be reconstructed

    def visible(self, width: int) -> torch.Tensor:
        """``[B, kept, width]``: the positions of the kept tokens, in place order, as a gather index."""
        kept = int((~self.drop[0]).sum())
        order = torch.argsort(self.drop.to(torch.int8), dim=1, stable=True)[:, :kept]
        return order[:, :, None].expand(-1, kept, width)


def _count(ratio: float, total: int) -> int:
    """At least one hidden and one kept, when there are two or more."""
    if total < 2:
        return total
    return min(max(int(round(ratio * total)), 1), total - 1)


def _choose(B: int, total: int, k: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """[B, total] bool with exactly k True per row, uniformly placed."""
    noise = torch.rand(B, total, generator=generator, device=device)
    idx = noise.argsort(dim=1)[:, :k]
    out = torch.zeros(B, total, dtype=torch.bool, device=device)
    return out.scatter_(1, idx, True)


def random_mask(B, Tp, S, ratio, generator=None, device="cpu") -> torch.Tensor:
    return _choose(B, Tp * S, _count(ratio, Tp * S), generator, device)


def tube_mask(B, Tp, S, ratio, generator=None, device="cpu") -> torch.Tensor:
    cells = _choose(B, S, _count(ratio, S), generator, device)
    return cells[:, None, :].expand(B, Tp, S).reshape(B, Tp * S)


def block_mask(B, Tp, S, ratio, generator=None, device="cpu") -> torch.Tensor:
    k = _count(ratio, S)
    start = torch.randint(0, S - k + 1, (B, 1), generator=generator, device=device)
    pos = torch.arange(S, device=device)[None]
    cells = (pos >= start) & (pos < start + k)
    return cells[:, None, :].expand(B, Tp, S).reshape(B, Tp * S)


def frame_mask(B, Tp, S, ratio, generator=None, device="cpu") -> torch.Tensor:
    frames = _choose(B, Tp, _count(ratio, Tp), generator, device)
    return frames[:, :, None].expand(B, Tp, S).reshape(B, Tp * S)


def temporal_mask(B, Tp, S, ratio, generator=None, device="cpu") -> torch.Tensor:
    k = _count(ratio, Tp)
    frames = torch.zeros(B, Tp, dtype=torch.bool, device=device)
    frames[:, Tp - k :] = True
    return frames[:, :, None].expand(B, Tp, S).reshape(B, Tp * S)


TOKEN_STRATEGIES = {
    "random": random_mask,
    "tube": tube_mask,
    "block": block_mask,
    "frame": frame_mask,
    "temporal": temporal_mask,
}
STRATEGIES = (*TOKEN_STRATEGIES, "attribute")


def attribute_mask(B, Tp, S, C, ratio, generator=None, device="cpu") -> torch.Tensor:
    """[B, L, C]: per sample one attribute hidden at ratio*L token positions."""
    L = Tp * S
    where = _choose(B, L, _count(ratio, L), generator, device)
    which = torch.randint(0, C, (B,), generator=generator, device=device)
    onehot = torch.nn.functional.one_hot(which, C).bool()
    return where[:, :, None] & onehot[:, None, :]


def draw_mask(strategy: str, B: int, Tp: int, S: int, C: int, ratio: float = 0.5,
              generator: torch.Generator | None = None, device="cpu") -> MaskDraw:
    if strategy == "attribute":
        if C < 2:
            raise ValueError("the attribute mask needs data with two or more attributes")
        hide = attribute_mask(B, Tp, S, C, ratio, generator, device)
        return MaskDraw(strategy, torch.zeros(B, Tp * S, dtype=torch.bool, device=device), hide)
    if strategy not in TOKEN_STRATEGIES:
        raise ValueError(f"unknown mask strategy {strategy!r}; known: {list(STRATEGIES)}")
    drop = TOKEN_STRATEGIES[strategy](B, Tp, S, ratio, generator, device)
    return MaskDraw(strategy, drop, drop[:, :, None].expand(B, Tp * S, C))


def draw_for_batch(batch: dict, strategies: list[str], Tp: int, S: int, ratio: float, training: bool,
                   strategy: str | None = None) -> MaskDraw:
    """A mask for ``batch`` with a strategy drawn from ``strategies`` (``attribute`` only for multi-attribute
    data), or ``strategy``. Outside training the draw is fixed by the windows' origins, so validation scores
    are comparable across epochs."""
    x = batch["x"]
    B, C = x.shape[0], x.shape[-1]
    choices = [s for s in strategies if s != "attribute" or C > 1]
    generator = None
    if training:
        pick = int(torch.randint(len(choices), ()))
    else:
        seed = int(batch["origin"].sum()) if "origin" in batch else 0
        generator = torch.Generator(device=x.device).manual_seed(seed)
        pick = seed % len(choices)
    return draw_mask(strategy or choices[pick], B, Tp, S, C, ratio, generator, x.device)


def whole_window(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, seen)`` ``[B, H + P, N, C]``: inputs and targets joined in scaled units, 0 where not observed
    (pre-training on training windows, whose targets the model may read)."""
    seen = torch.cat([batch["input_mask"], batch["target_mask"]], dim=1)
    values = torch.cat([batch["x"], torch.where(batch["target_mask"], to_scaled(batch, batch["y"]), torch.zeros(()))], 1)
    return torch.where(seen, values, torch.zeros(())), seen


def inputs_as_window(batch: dict) -> dict:
    """The input window split in two halves, read as history and future by a masked reconstruction (test-time
    adaptation): only ``x``, ``input_mask``, the scaler and the time features of the input steps are kept."""
    x, seen = batch["x"], batch["input_mask"]
    H = x.shape[1]
    if H < 2:
        raise UrbanstError("a masked reconstruction of the inputs needs two or more steps; use a longer --history")
    half = H - H // 2
    inputs = {k: v for k, v in batch.items() if k not in ("y", "target_mask", "periodic", "periodic_mask")}
    inputs.update(x=x[:, :half], input_mask=seen[:, :half], y=to_original(batch, x[:, half:]),
                  target_mask=seen[:, half:], time_of_day=batch["time_of_day"][:, :H],
                  day_of_week=batch["day_of_week"][:, :H])
    return inputs

"""AirGPT's instruction: the multi-source context of a window as text, embedded with the backbone.

One LM sequence per window::

    [start] {city} air quality, {time}. weather: {weather}. {task}: <station 1> ... <station N>

``{time}`` is the input span (``24 hours from monday 08:00``, as in urbangpt); ``{weather}`` one
piece per exogenous series, the city-wide mean over stations of each station's last observed value
(``temperature 3``, ``wind from NW``, ``wind speed 2.4``; ``... unknown`` when none is observed);
``{task}`` names the channels and the horizon. Each ``<station>`` is the station's ST token plus the
mean embedding of its name. Text pieces are tables embedded once with the backbone's (frozen) token
embeddings and cached, so building a batch is a gather: numbers are rounded to a resolution of about
a tenth to a half of the series' training standard deviation, within 4 standard deviations of its mean.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from urbanst.data.exogenous import COMPASS, exo_to_original, is_angle, label
from urbanst.contract import last_observed
from urbanst.models.urbangpt.instruction import Context, week_slots
from urbanst.prompts.text import start_id, text_table, token_ids

SPAN = 4.0  # table values cover mean +- SPAN standard deviations


def resolution(std: float) -> float:
    """Rounding step of a series' text: a power of ten between a tenth and a half of its std."""
    return 10.0 ** math.floor(math.log10(max(std, 1e-6) / 2))


def _format(value: float, step: float) -> str:
    decimals = max(0, -int(round(math.log10(step))))
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text  # no "-0"


class WeatherInstruction(nn.Module):
    """Embedded instruction prefix ``[B, L, D]`` (and mask) per window, and station-name embeddings ``[N, D]``.

    The backbone is passed to each call and never stored here, so its weights are not registered twice."""

    def __init__(self, context: Context, exogenous_names: list[str], unit_names: list[str]):
        super().__init__()
        self.context, self.exogenous_names, self.unit_names = context, list(exogenous_names), list(unit_names)
        self._cache: dict = {}

    # -- texts --------------------------------------------------------------------------------
    def _grids(self, mean: list[float], std: list[float]) -> list[tuple[float, float, int]]:
        """Per exogenous series: (first value, step, rows) of its table (angles: the 16 compass points)."""
        grids = []
        for name, m, s in zip(self.exogenous_names, mean, std):
            if is_angle(name):
                grids.append((0.0, 22.5, len(COMPASS)))
            else:
                step = resolution(s)
                first = math.floor((m - SPAN * s) / step) * step
                grids.append((first, step, int(math.ceil(2 * SPAN * s / step)) + 2))
        return grids

    def _texts(self, e: int, grid: tuple[float, float, int]) -> list[str]:
        """The table of series ``e``: one text per row, then ``unknown``."""
        name, (first, step, rows) = self.exogenous_names[e], grid
        if is_angle(name):
            values = list(COMPASS)
        else:
            values = [_format(first + k * step, step) for k in range(rows)]
        return [f"{label(name)} {v}" for v in values] + [f"{label(name)} unknown"]

    def _fixed(self) -> list[str]:
        """The fixed pieces: opening, weather heading, separator, closing with the task."""
        c = self.context
        heading = ". weather: " if self.exogenous_names else ""
        return [f"{c.city} air quality, ", heading, ", ", f". {c.task_text()}:"]

    # -- the weather of a window ---------------------------------------------------------------
    def weather_rows(self, batch: dict, grids) -> torch.Tensor:
        """``[B, E]`` table row of each series: the mean over stations of their last observed value."""
        if not self.exogenous_names:
            return torch.zeros(batch["x"].shape[0], 0, dtype=torch.long, device=batch["x"].device)
        exo, mask = exo_to_original(batch, batch["exo"]), batch["exo_mask"]
        last, seen = last_observed(exo, mask), mask.any(1)  # [B, N, E]
        count = seen.sum(1)
        rows = []
        for e, (name, (first, step, n)) in enumerate(zip(self.exogenous_names, grids)):
            if is_angle(name):
                rad = torch.deg2rad(last[..., e])
                s, c = (torch.sin(rad) * seen[..., e]).sum(1), (torch.cos(rad) * seen[..., e]).sum(1)
                deg = torch.rad2deg(torch.atan2(s, c)) % 360
                row = torch.round(deg / 22.5).long() % n
            else:
                mean = (last[..., e] * seen[..., e]).sum(1) / count[:, e].clamp(min=1)
                row = torch.round((mean - first) / step).long().clamp(0, n - 1)
            rows.append(torch.where(count[:, e] > 0, row, torch.full_like(row, n)))  # n: "unknown"
        return torch.stack(rows, 1)

    def text(self, batch: dict, i: int = 0) -> str:
        """The instruction of window ``i`` of ``batch`` (the station tokens shown as ``<name>``)."""
        mean, std = self._stats(batch)
        grids = self._grids(mean, std)
        rows = self.weather_rows(batch, grids)[i].tolist()
        opening, heading, separator, closing = self._fixed()
        slot = int(week_slots(batch, self.context.steps_per_day)[i])
        weather = separator.join(self._texts(e, g)[r] for e, (g, r) in enumerate(zip(grids, rows)))
        stations = " ".join(f"<{n}>" for n in self.unit_names)
        return f"{opening}{self.context.time(slot)}{heading}{weather}{closing} {stations}"

    # -- embeddings ---------------------------------------------------------------------------------
    @staticmethod
    def _stats(batch: dict) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if "exo_mean" not in batch:
            return (), ()
        return tuple(batch["exo_mean"][0].tolist()), tuple(batch["exo_std"][0].tolist())

    def _embedded(self, backbone, device, stats: tuple) -> dict:
        """Every text piece embedded (cached while the token embeddings are frozen)."""
        frozen = not backbone.token_embeddings.weight.requires_grad
        key = (self.context, tuple(self.exogenous_names), tuple(self.unit_names), stats, str(device), id(backbone))
        if frozen and self._cache.get("key") == key:
            return self._cache["parts"]
        with torch.set_grad_enabled(not frozen):
            def embed(ids):
                return backbone.embed_tokens(torch.as_tensor(ids, dtype=torch.long, device=device))

            grids = self._grids(*stats)
            start = start_id(backbone)
            fixed = self._fixed()
            names, name_mask = text_table(backbone, self.unit_names, embed)
            weight = name_mask[..., None].to(device=device, dtype=names.dtype)
            parts = {
                "grids": grids,
                "fixed": [embed([start] * (start is not None) + token_ids(backbone, fixed[0]))]
                + [embed(token_ids(backbone, t)) for t in fixed[1:]],
                "time": text_table(backbone, [self.context.time(s) for s in range(self.context.num_slots)], embed),
                "weather": [text_table(backbone, self._texts(e, g), embed) for e, g in enumerate(grids)],
                "names": (names * weight).sum(1) / weight.sum(1).clamp(min=1),
            }
        if frozen:
            self._cache = {"key": key, "parts": parts}
        return parts

    def station_names(self, backbone, batch: dict) -> torch.Tensor:
        """``[N, D]``: the mean token embedding of each station's name."""
        return self._embedded(backbone, batch["x"].device, self._stats(batch))["names"]

    def prefix(self, backbone, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded instruction prefix ``[B, L, D]`` and its mask ``[B, L]`` (padding of variable pieces False)."""
        device, B = batch["x"].device, batch["x"].shape[0]
        parts = self._embedded(backbone, device, self._stats(batch))
        rows = self.weather_rows(batch, parts["grids"])
        opening, heading, separator, closing = parts["fixed"]
        pieces = [opening, (parts["time"], week_slots(batch, self.context.steps_per_day)), heading]
        for e, table in enumerate(parts["weather"]):
            pieces += ([separator] if e else []) + [(table, rows[:, e])]
        pieces.append(closing)
        embeds, masks = [], []
        for piece in pieces:
            if isinstance(piece, tuple):  # a table and the row of each window
                (table, mask), index = piece
                embeds.append(table[index])
                masks.append(mask.to(device)[index])
            elif piece.shape[0]:
                embeds.append(piece.expand(B, -1, -1))
                masks.append(torch.ones(B, piece.shape[0], dtype=torch.bool, device=device))
        return torch.cat(embeds, 1), torch.cat(masks, 1)

"""An instruction describing a window's weather (AirGPT's), as backbone embeddings.

One LM sequence per window::

    [start] {city} air quality, {time}. weather: {weather}. {task}: <station 1> ... <station N>

``{time}`` is the input span (``24 hours from monday 08:00``, as in urbangpt); ``{weather}`` one piece per
exogenous series, the city-wide mean over stations of each station's last observed value (``temperature
3``, ``wind from NW``, ``wind speed 2.4``; ``... unknown`` when none is observed); ``{task}`` names the
channels and the horizon. The caller appends the station tokens; :meth:`WeatherInstruction.station_names`
gives the mean embedding of each station's name. Every variable piece is a table of texts
(:mod:`urbanst.parts.prompts.instruction`): numbers are rounded to a resolution of about a tenth to a half of
the series' training standard deviation, within 4 standard deviations of its mean.
"""

from __future__ import annotations

import math

import torch

from urbanst.contract import last_observed
from urbanst.data.exogenous import COMPASS, exo_to_original, is_angle, label
from urbanst.parts.prompts.context import Context, week_slots
from urbanst.parts.prompts.instruction import Instruction, Table
from urbanst.parts.prompts.text import Texts

SPAN = 4.0  # table values cover mean +- SPAN standard deviations


def resolution(std: float) -> float:
    """Rounding step of a series' text: a power of ten between a tenth and a half of its std."""
    return 10.0 ** math.floor(math.log10(max(std, 1e-6) / 2))


def _format(value: float, step: float) -> str:
    decimals = max(0, -int(round(math.log10(step))))
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text  # no "-0"


class WeatherInstruction:
    """The embedded instruction ``[B, L, D]`` (and mask) of each window, and station-name embeddings ``[N, D]``."""

    def __init__(self, context: Context, exogenous_names: list[str], unit_names: list[str]):
        self.context, self.exogenous_names = context, list(exogenous_names)
        self.names = Texts(unit_names)
        self._built: tuple[tuple, Instruction, list] | None = None

    def _grids(self, mean: tuple[float, ...], std: tuple[float, ...]) -> list[tuple[float, float, int]]:
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
        values = list(COMPASS) if is_angle(name) else [_format(first + k * step, step) for k in range(rows)]
        return [f"{label(name)} {v}" for v in values] + [f"{label(name)} unknown"]

    def _instruction(self, batch: dict) -> tuple[Instruction, list]:
        """The instruction and the weather tables' grids for the exogenous statistics of ``batch``."""
        stats = (tuple(batch["exo_mean"][0].tolist()), tuple(batch["exo_std"][0].tolist())) if "exo_mean" in batch else ((), ())
        if self._built is None or self._built[0] != stats:
            c, grids = self.context, self._grids(*stats)
            pieces = [f"{c.place} air quality, ", Table("time", tuple(c.time(s) for s in range(c.num_slots)))]
            for e, grid in enumerate(grids):
                pieces += [", " if e else ". weather: ", Table(f"weather {e}", tuple(self._texts(e, grid)))]
            self._built = (stats, Instruction([*pieces, f". {c.task_text()}:"], start=True), grids)
        return self._built[1], self._built[2]

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

    def _rows(self, batch: dict, grids) -> dict[str, torch.Tensor]:
        weather = self.weather_rows(batch, grids)
        rows = {f"weather {e}": weather[:, e] for e in range(weather.shape[1])}
        return {"time": week_slots(batch, self.context.steps_per_day), **rows}

    def text(self, batch: dict, i: int = 0) -> str:
        """The instruction of window ``i`` of ``batch`` (the station tokens shown as ``<name>``)."""
        instruction, grids = self._instruction(batch)
        rows = {name: int(row[i]) for name, row in self._rows(batch, grids).items()}
        return f"{instruction.text(rows)} " + " ".join(f"<{n}>" for n in self.names.texts)

    def station_names(self, backbone, batch: dict) -> torch.Tensor:
        """``[N, D]``: the mean token embedding of each station's name."""
        return self.names.mean(backbone, batch["x"].device)

    def prefix(self, backbone, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded instruction ``[B, L, D]`` and its mask ``[B, L]`` (padding of variable pieces False)."""
        instruction, grids = self._instruction(batch)
        x = batch["x"]
        embedded = instruction.embed(backbone, (x.shape[0],), self._rows(batch, grids), device=x.device, dtype=x.dtype)
        return embedded.embeds, embedded.mask

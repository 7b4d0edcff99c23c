"""The one container for a spatio-temporal dataset.

Values are ``[T, N, C]`` float32 with NaN wherever ``observed_mask`` is False, so a
computation that forgets the mask turns loud (NaN) instead of silently using zeros.
Grid data keep ``grid_shape`` (and ``grid_cells`` when some cells are not units, such as
land in a sea-surface field) so that patch and convolution models can fold units back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from urbanst.errors import UrbanstError


@dataclass
class STData:
    name: str
    values: np.ndarray  # [T, N, C] float32, NaN where not observed
    observed_mask: np.ndarray  # [T, N, C] bool, True = valid observation
    timestamps: pd.DatetimeIndex  # [T], regular: start + k * step
    attributes: list[str]
    units: list[str]
    city: str
    unit_names: list[str] | None = None
    grid_shape: tuple[int, int] | None = None  # (H, W) for grid data
    grid_cells: np.ndarray | None = None  # [N] flat cell index into H*W, row-major
    coords: np.ndarray | None = None  # [N, 2] (lat, lon) degrees, or projected metres (see coord_system)
    coord_system: str = "latlon"  # "latlon" or "metres"
    adjacency: np.ndarray | None = None  # [N, N] float, 0 = no edge
    exogenous: np.ndarray | None = None  # [T, N, E] float32, NaN where missing
    exogenous_names: list[str] = field(default_factory=list)
    eval_mask: np.ndarray | None = None  # [T, N, C] bool: a published evaluation mask (imputation)
    # Published protocol facts a task may follow, e.g. {"test_months": [3, 6, 9, 12]} for AQI-36.
    protocol: dict = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        self.values = _float32_values(self.values, self.name)
        self.observed_mask = _bool_mask(self.observed_mask, self.name)
        try:
            self.timestamps = pd.DatetimeIndex(self.timestamps)
        except (TypeError, ValueError, OverflowError) as err:
            raise UrbanstError(
                f"dataset {self.name!r}: timestamps must be dates (datetime64, pandas Timestamps or ISO text) in one "
                f"time zone or none ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
            ) from None
        if self.values.ndim != 3:
            raise UrbanstError(f"dataset {self.name!r}: values must be [T, N, C], got shape {self.values.shape}")
        if self.observed_mask.shape != self.values.shape:
            raise UrbanstError(
                f"dataset {self.name!r}: observed_mask shape {self.observed_mask.shape} "
                f"differs from values shape {self.values.shape}"
            )
        # Anything not finite is missing, whatever the mask claimed; masked values become NaN.
        self.observed_mask &= np.isfinite(self.values)
        self.values[~self.observed_mask] = np.nan
        T, N, C = self.values.shape
        if T < 2:
            raise UrbanstError(f"dataset {self.name!r}: needs at least 2 time steps, got {T}")
        if N < 1 or C < 1:
            raise UrbanstError(
                f"dataset {self.name!r}: needs at least one unit and one channel, got shape {self.values.shape}"
            )
        if len(self.timestamps) != T:
            raise UrbanstError(f"dataset {self.name!r}: {len(self.timestamps)} timestamps for {T} steps")
        if self.timestamps.hasnans:
            raise UrbanstError(f"dataset {self.name!r}: {int(self.timestamps.isna().sum())} empty (NaT) timestamps")
        steps = np.diff(self.timestamps.asi8)
        if not self.timestamps.is_monotonic_increasing or not (steps > 0).all() or not (steps == steps[0]).all():
            raise UrbanstError(
                f"dataset {self.name!r}: timestamps must be sorted and evenly spaced "
                "(insert missing steps as masked values)"
            )
        if len(self.attributes) != C or len(self.units) != C:
            raise UrbanstError(f"dataset {self.name!r}: need {C} attribute names and units")
        if self.unit_names is not None and len(self.unit_names) != N:
            raise UrbanstError(f"dataset {self.name!r}: {len(self.unit_names)} unit names for {N} units")
        if self.grid_shape is not None:
            self.grid_shape = (int(self.grid_shape[0]), int(self.grid_shape[1]))
            if self.grid_cells is None:
                if self.grid_shape[0] * self.grid_shape[1] != N:
                    raise UrbanstError(f"dataset {self.name!r}: grid {self.grid_shape} does not hold {N} units")
                self.grid_cells = np.arange(N)
            self.grid_cells = np.asarray(self.grid_cells, dtype=np.int64)
            if self.grid_cells.shape != (N,):
                raise UrbanstError(f"dataset {self.name!r}: grid_cells must list one cell per unit")
        if self.coords is not None:
            self.coords = np.asarray(self.coords, dtype=np.float64)
            if self.coords.shape != (N, 2):
                raise UrbanstError(f"dataset {self.name!r}: coords must be [N, 2], got {self.coords.shape}")
        if self.adjacency is not None:
            self.adjacency = np.asarray(self.adjacency, dtype=np.float32)
            if self.adjacency.shape != (N, N):
                raise UrbanstError(f"dataset {self.name!r}: adjacency must be [N, N], got {self.adjacency.shape}")
        if self.exogenous is not None:
            self.exogenous = np.asarray(self.exogenous, dtype=np.float32)
            if self.exogenous.shape[:2] != (T, N) or self.exogenous.ndim != 3:
                raise UrbanstError(f"dataset {self.name!r}: exogenous must be [T, N, E], got {self.exogenous.shape}")
            if len(self.exogenous_names) != self.exogenous.shape[2]:
                raise UrbanstError(f"dataset {self.name!r}: need one name per exogenous series")
        if self.eval_mask is not None:
            self.eval_mask = np.asarray(self.eval_mask, dtype=bool) & self.observed_mask

    # -- shape and time -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.values.shape  # type: ignore[return-value]

    @property
    def num_steps(self) -> int:
        return self.values.shape[0]

    @property
    def num_units(self) -> int:
        return self.values.shape[1]

    @property
    def num_channels(self) -> int:
        return self.values.shape[2]

    @property
    def step(self) -> pd.Timedelta:
        return self.timestamps[1] - self.timestamps[0]

    @property
    def missing_fraction(self) -> float:
        return float(1.0 - self.observed_mask.mean())

    def steps_per(self, period: str) -> int | None:
        """Whole number of steps in one ``"day"`` or ``"week"``, or None if the step does not divide it."""
        length = pd.Timedelta(days=1 if period == "day" else 7)
        ratio = length / self.step
        return int(round(ratio)) if ratio >= 1 and abs(ratio - round(ratio)) < 1e-9 else None

    def time_features(self) -> tuple[np.ndarray, np.ndarray]:
        """Per step: time of day in [0, 1) and day of week (Monday = 0)."""
        ts = self.timestamps
        seconds = ts.hour * 3600 + ts.minute * 60 + ts.second
        return (np.asarray(seconds, dtype=np.float32) / 86400.0), np.asarray(ts.day_of_week, dtype=np.int64)

    # -- views -------------------------------------------------------------------------
    def select_channels(self, channels: list[str]) -> STData:
        unknown = [c for c in channels if c not in self.attributes]
        if unknown:
            raise UrbanstError(f"dataset {self.name!r} has no attribute {unknown}; it has {self.attributes}")
        idx = [self.attributes.index(c) for c in channels]
        return replace(
            self,
            values=self.values[..., idx],
            observed_mask=self.observed_mask[..., idx],
            attributes=[self.attributes[i] for i in idx],
            units=[self.units[i] for i in idx],
            eval_mask=None if self.eval_mask is None else self.eval_mask[..., idx],
        )

    def with_future_steps(self, steps: int) -> STData:
        """The same data followed by ``steps`` unobserved steps: room for a forecast past the last observation."""
        T, N, C = self.shape
        future = pd.date_range(self.timestamps[-1] + self.step, periods=steps, freq=self.step)
        pad = lambda a, fill: None if a is None else np.concatenate([a, np.full((steps, *a.shape[1:]), fill, a.dtype)])  # noqa: E731
        return replace(
            self,
            values=pad(self.values, np.nan),
            observed_mask=pad(self.observed_mask, False),
            timestamps=self.timestamps.append(future),
            exogenous=pad(self.exogenous, np.nan),
            eval_mask=pad(self.eval_mask, False),
        )

    def summary(self) -> dict:
        T, N, C = self.shape
        return {
            "name": self.name,
            "shape": [T, N, C],
            "step": format_step(self.step),
            "start": str(self.timestamps[0]),
            "end": str(self.timestamps[-1]),
            "city": self.city,
            "missing_pct": round(100 * self.missing_fraction, 2),
            "attributes": [f"{a} [{u}]" for a, u in zip(self.attributes, self.units)],
            "spatial": self.spatial_kind(),
            "exogenous": list(self.exogenous_names),
            "notes": self.notes,
        }

    def spatial_kind(self) -> str:
        if self.grid_shape is not None:
            H, W = self.grid_shape
            full = self.num_units == H * W
            return f"grid {H}x{W}" + ("" if full else f" ({self.num_units} active cells)")
        parts = ["coordinates" if self.coords is not None else None, "adjacency" if self.adjacency is not None else None]
        return "units with " + (" + ".join(p for p in parts if p) or "no spatial metadata")


def format_step(step: pd.Timedelta) -> str:
    """``1h``, ``5min``, ``1d`` rather than ``0 days 01:00:00`` (``250ms`` and the like below a second)."""
    ns = int(step.as_unit("ns").value)
    units = (("d", 86400 * 10**9), ("h", 3600 * 10**9), ("min", 60 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3))
    for unit, size in units:
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def _float32_values(values, name: str) -> np.ndarray:
    """``values`` as float32; refuses what is not real numbers, and finite values float32 cannot hold."""
    try:
        array = np.asarray(values)
        if array.dtype.kind in "OUS":  # numbers held as objects or text ("1.5", "nan", None = missing)
            array = array.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise UrbanstError(f"dataset {name!r}: values must be numbers ({str(err).splitlines()[0]})") from None
    if array.dtype.kind not in "biuf":
        raise UrbanstError(f"dataset {name!r}: values must be real numbers, got dtype {array.dtype}")
    if array.dtype == np.float32:
        return array
    with np.errstate(over="ignore"):
        out = array.astype(np.float32)
    if array.dtype.kind == "f" and array.dtype.itemsize > 4:
        overflow = int((np.isfinite(array) & ~np.isfinite(out)).sum())
        if overflow:
            raise UrbanstError(
                f"dataset {name!r}: {overflow} value(s) exceed the float32 range (|x| > 3.4e38); rescale them"
            )
    return out


def _bool_mask(mask, name: str) -> np.ndarray:
    """A mask given as bool, or as numbers that are all 0 or 1 (1 = observed)."""
    array = np.asarray(mask)
    if array.dtype.kind == "b":
        return array
    if array.dtype.kind not in "iuf" or not np.isin(array, (0, 1)).all():
        raise UrbanstError(
            f"dataset {name!r}: observed_mask must be bool or 0/1 (True/1 = observed), got dtype {array.dtype}"
            + ("" if array.dtype.kind not in "iuf" else " with other values")
        )
    return array.astype(bool)

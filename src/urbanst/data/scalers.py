"""Per-channel standard scaling fit on observed training values only.

A scaler may carry a second one for the dataset's exogenous series (``exogenous``; see
:mod:`urbanst.data.exogenous`), so that it travels and is saved with the model like the first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from urbanst.errors import UrbanstError


@dataclass
class StandardScaler:
    mean: np.ndarray  # [C]
    std: np.ndarray  # [C]
    exogenous: StandardScaler | None = None  # [E] of the exogenous series, if any

    @classmethod
    def fit(cls, values: np.ndarray, mask: np.ndarray) -> StandardScaler:
        """Fit on the finite ``values[mask]`` per channel (last axis); channels with no observation are refused."""
        values = np.asarray(values, dtype=np.float64).reshape(-1, values.shape[-1])
        mask = np.asarray(mask, dtype=bool).reshape(values.shape) & np.isfinite(values)  # NaN/inf count as missing
        count = mask.sum(0)
        if (count == 0).any():
            raise UrbanstError(f"cannot fit the scaler: channel(s) {np.flatnonzero(count == 0).tolist()} have no observed training value")
        filled = np.where(mask, values, 0.0)
        mean = filled.sum(0) / count
        var = (np.where(mask, values - mean, 0.0) ** 2).sum(0) / count
        std = np.sqrt(var)
        std[std < 1e-8] = 1.0  # a constant channel is shifted, not blown up
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def transform(self, x):
        return (x - self._like(self.mean, x)) / self._like(self.std, x)

    def inverse(self, x):
        return x * self._like(self.std, x) + self._like(self.mean, x)

    @staticmethod
    def _like(stat: np.ndarray, x):
        if isinstance(x, torch.Tensor):
            return torch.as_tensor(stat, dtype=x.dtype, device=x.device)
        return stat

    def to_dict(self) -> dict:
        out = {"kind": "standard", "mean": self.mean.tolist(), "std": self.std.tolist()}
        if self.exogenous is not None:
            out["exogenous"] = self.exogenous.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> StandardScaler:
        """Read what :meth:`to_dict` wrote; anything else (a damaged scaler.json) is refused."""
        if not isinstance(d, dict):
            raise UrbanstError(f"a scaler must be a mapping {{'kind', 'mean', 'std'}}, got {type(d).__name__}")
        if d.get("kind") != "standard":
            raise UrbanstError(f"unknown scaler kind {d.get('kind')!r}")
        stats = []
        for key in ("mean", "std"):
            value = d.get(key)
            ok = isinstance(value, list) and value and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            )
            if not ok or not np.isfinite(np.asarray(value, dtype=np.float64)).all():
                raise UrbanstError(f"scaler {key!r} must be a non-empty list of finite numbers, got {value!r}"[:300])
            with np.errstate(over="ignore"):  # beyond float32: inf, refused below
                stats.append(np.asarray(value, dtype=np.float32))
        mean, std = stats
        if mean.shape != std.shape:
            raise UrbanstError(f"scaler mean and std differ in length ({mean.size} and {std.size})")
        if not (std > 0).all() or not np.isfinite(mean).all() or not np.isfinite(std).all():
            raise UrbanstError("scaler std must be > 0 and every statistic must fit float32")
        exogenous = d.get("exogenous")
        return cls(mean, std, None if exogenous is None else cls.from_dict(exogenous))

"""Where patch tokens sit: fixed sin-cos positions over a grid and over time, and, for region data, the units'
positions and neighbours from their graph; windows of other datasets carry their own geometry.

Region units (no full grid) are placed by the first ``pe_dim`` non-trivial eigenvectors of the normalised
Laplacian of the adjacency (or of a k-nearest-neighbour graph of the coordinates), scaled by sqrt(N) and
sign-fixed so the largest entry is positive. Spatial priors propagate with the row-normalised adjacency
with self loops.

A model pre-trained over datasets of different shapes reads each dataset's windows (scaled by its own
training split) through :class:`SpatialWindows`, which adds the dataset's grid shape or region graph to every
batch; the window sets are joined in a stream whose batches never mix datasets.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset

from urbanst.contract import DataSpec

# -- fixed sin-cos positions (any size) ------------------------------------------------


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """``[len(positions), dim]``: sin over the first half, cos over the second (MAE convention)."""
    if dim % 2:
        raise ValueError(f"sin-cos width must be even, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.asarray(positions, dtype=np.float64).reshape(-1)[:, None] * omega[None]
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


@lru_cache(maxsize=64)
def sincos_2d(dim: int, Hp: int, Wp: int, device=None) -> torch.Tensor:
    """``[Hp * Wp, dim]`` row-major; half the width encodes the row, half the column. Cached per device, so a
    step on a GPU copies nothing from the host."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos width must be divisible by 4, got {dim}")
    hh, ww = np.meshgrid(np.arange(Hp), np.arange(Wp), indexing="ij")
    emb = np.concatenate([sincos_1d(dim // 2, hh), sincos_1d(dim // 2, ww)], axis=1)
    return torch.from_numpy(emb).float().to(device)


@lru_cache(maxsize=64)
def sincos_t(dim: int, Tp: int, device=None) -> torch.Tensor:
    """``[Tp, dim]``, cached per device."""
    return torch.from_numpy(sincos_1d(dim, np.arange(Tp))).float().to(device)


# -- spatial structure of region data ------------------------------------------------


@dataclass
class RegionGraph:
    """What a region dataset's adjacency or coordinates give its units (all tensors, [N ...])."""

    pe: torch.Tensor  # [N, k] Laplacian eigenvectors, scaled by sqrt(N)
    edge_index: torch.Tensor  # [2, E] long, rows = targets, of the row-normalised adjacency with self loops
    edge_weight: torch.Tensor  # [E] float

    @property
    def num_units(self) -> int:
        return self.pe.shape[0]

    def operator(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """Â = D^-1 (A + I) as a dense ``[N, N]`` matrix (small N) or a sparse COO tensor."""
        N = self.num_units
        if N <= 1024:
            dense = torch.zeros(N, N, dtype=dtype, device=device)
            dense[self.edge_index[0].to(device), self.edge_index[1].to(device)] = self.edge_weight.to(device, dtype)
            return dense
        return torch.sparse_coo_tensor(self.edge_index.to(device), self.edge_weight.to(device, dtype), (N, N)).coalesce()


def knn_adjacency(coords: np.ndarray, k: int = 8) -> np.ndarray:
    """Symmetric k-nearest-neighbour graph with Gaussian weights (bandwidth = median kNN distance)."""
    from scipy.spatial import cKDTree

    coords = np.asarray(coords, dtype=np.float64)
    N = len(coords)
    k = min(k, N - 1)
    if k < 1:
        return np.zeros((N, N), dtype=np.float32)
    dist, idx = cKDTree(coords).query(coords, k + 1)
    dist, idx = dist[:, 1:], idx[:, 1:]
    sigma = max(float(np.median(dist)), 1e-12)
    A = np.zeros((N, N), dtype=np.float32)
    A[np.repeat(np.arange(N), k), idx.ravel()] = np.exp(-((dist.ravel() / sigma) ** 2))
    return np.maximum(A, A.T)


def region_graph(adjacency: np.ndarray | None, coords: np.ndarray | None, num_units: int, pe_dim: int) -> RegionGraph:
    """Positions and propagation operator of ``num_units`` region units from their adjacency (or coordinates)."""
    N = num_units
    if adjacency is None and coords is not None:
        adjacency = knn_adjacency(coords)
    if adjacency is None:
        warnings.warn("region data without adjacency or coordinates: units get no position and no neighbours",
                      stacklevel=3)
        A = np.zeros((N, N), dtype=np.float64)
    else:
        A = np.abs(np.asarray(adjacency, dtype=np.float64))
        if A.shape != (N, N):
            raise ValueError(f"adjacency must be [{N}, {N}], got {A.shape}")
        A = (A + A.T) / 2
        np.fill_diagonal(A, 0.0)
    pe = _laplacian_pe(A, pe_dim)
    Ahat = A + np.eye(N)
    Ahat = Ahat / Ahat.sum(1, keepdims=True)
    rows, cols = np.nonzero(Ahat)
    return RegionGraph(
        pe=torch.from_numpy(pe).float(),
        edge_index=torch.from_numpy(np.stack([rows, cols])).long(),
        edge_weight=torch.from_numpy(Ahat[rows, cols]).float(),
    )


def _laplacian_pe(A: np.ndarray, k: int) -> np.ndarray:
    N = len(A)
    out = np.zeros((N, k))
    if N < 2 or not A.any():
        return out
    deg = A.sum(1)
    inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    L = np.eye(N) - inv_sqrt[:, None] * A * inv_sqrt[None, :]
    m = min(k, N - 1)
    if N <= 4000:
        _, vecs = np.linalg.eigh(L)
        vecs = vecs[:, 1 : m + 1]
    else:
        import scipy.sparse as sp
        from scipy.sparse.linalg import eigsh

        _, vecs = eigsh(sp.csr_matrix(L), k=m + 1, which="SA")
        vecs = vecs[:, 1 : m + 1]
    # a fixed sign per eigenvector: its largest entry is positive
    top = vecs[np.abs(vecs).argmax(0), np.arange(vecs.shape[1])]
    vecs = vecs * np.where(top < 0, -1.0, 1.0)[None]
    out[:, :m] = vecs * math.sqrt(N)
    return out


# -- windows of other datasets ---------------------------------------------------------


def spatial_batch_keys(spec: DataSpec, pe_dim: int = 16) -> dict[str, torch.Tensor]:
    """The tensors that tell a batch's geometry: a grid shape, or a region graph."""
    if spec.grid_shape is not None:
        return {"grid_shape": torch.tensor(list(spec.grid_shape), dtype=torch.long)}
    graph = region_graph(spec.adjacency, spec.coords, spec.num_units, pe_dim)
    return {
        "grid_shape": torch.zeros(0, dtype=torch.long),
        "unit_pe": graph.pe,
        "edge_index": graph.edge_index,
        "edge_weight": graph.edge_weight,
    }


def batch_geometry(batch: dict) -> tuple[tuple[int, int] | None, RegionGraph | None]:
    """The grid ``(H, W)`` or the region graph a batch of :class:`SpatialWindows` carries."""
    shape = batch["grid_shape"].reshape(-1).tolist()
    if len(shape) == 2:
        return (int(shape[0]), int(shape[1])), None
    return None, RegionGraph(batch["unit_pe"], batch["edge_index"], batch["edge_weight"])


class SpatialWindows(Dataset):
    """A window set whose batches also carry their dataset's spatial structure (see ``spatial_batch_keys``)."""

    def __init__(self, windows, spec: DataSpec, pe_dim: int = 16):
        self.windows = windows
        self.spec = spec
        self.extra = spatial_batch_keys(spec, pe_dim)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        return {**self.windows[i], **self.extra}

    def __getitems__(self, indices) -> dict:
        return {**self.windows.__getitems__(indices), **self.extra}

    def __getattr__(self, name):  # series, horizon, origins ... of the wrapped windows
        if name in ("windows", "spec", "extra"):
            raise AttributeError(name)
        return getattr(self.windows, name)

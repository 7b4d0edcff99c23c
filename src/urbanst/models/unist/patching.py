"""Geometry of UniST's tokens: volumes, 3-D patches, fixed sin-cos positions, spatial structure.

A batch ``[B, T, N, C]`` becomes a volume ``[B, T, Hg, Wg, C]``: a grid folds N back to
``(H, W)``; region and sensor data (no full grid) lay their units on a 1-D spatial axis
``(1, N)`` and use one unit per token (h = w = 1), since their order carries no geometry.
The volume is padded with unobserved entries to whole patches (history at its start, so
that no token straddles the present; horizon and the grid at their end).

Tokens are in time-major order ``(t, h, w)``: the history tokens are the first
``Th * S`` and the future tokens the last ``Tf * S``, so forecasting slices instead of
gathering.

Where region units sit is given by their graph: the first ``pe_dim`` non-trivial
eigenvectors of the normalised Laplacian of the adjacency (or of a k-nearest-neighbour
graph of the coordinates), scaled by sqrt(N) and sign-fixed so the largest entry is
positive. The spatial priors use the row-normalised adjacency with self loops.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from einops import rearrange

# -- layout ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    grid: bool
    Hg: int  # spatial shape of the volume before padding (regions: 1 x N)
    Wg: int
    pt: int
    ph: int
    pw: int
    history: int
    horizon: int

    @property
    def hist_pad(self) -> int:
        return (-self.history) % self.pt

    @property
    def fut_pad(self) -> int:
        return (-self.horizon) % self.pt

    @property
    def Hp(self) -> int:
        return -(-self.Hg // self.ph)

    @property
    def Wp(self) -> int:
        return -(-self.Wg // self.pw)

    @property
    def S(self) -> int:
        return self.Hp * self.Wp

    @property
    def Th(self) -> int:
        return (self.history + self.hist_pad) // self.pt

    @property
    def Tf(self) -> int:
        return (self.horizon + self.fut_pad) // self.pt

    @property
    def Tp(self) -> int:
        return self.Th + self.Tf

    @property
    def patch_volume(self) -> int:
        return self.pt * self.ph * self.pw


def to_volume(values: torch.Tensor, layout: Layout, front: int, back: int) -> torch.Tensor:
    """``[B, T, N, F]`` -> ``[B, front + T + back, Hp*ph, Wp*pw, F]``, zero padded."""
    vol = values.reshape(values.shape[0], values.shape[1], layout.Hg, layout.Wg, values.shape[-1])
    pad_h, pad_w = layout.Hp * layout.ph - layout.Hg, layout.Wp * layout.pw - layout.Wg
    if front or back or pad_h or pad_w:
        vol = torch.nn.functional.pad(vol, (0, 0, 0, pad_w, 0, pad_h, front, back))
    return vol


def from_volume(vol: torch.Tensor, layout: Layout, front: int, steps: int) -> torch.Tensor:
    """Inverse of :func:`to_volume`: ``[B, T', H', W', F]`` -> ``[B, steps, N, F]``."""
    vol = vol[:, front : front + steps, : layout.Hg, : layout.Wg]
    return vol.reshape(vol.shape[0], steps, layout.Hg * layout.Wg, vol.shape[-1])


def patchify(vol: torch.Tensor, layout: Layout) -> torch.Tensor:
    """``[B, T', H', W', F]`` -> ``[B, L, F * pt * ph * pw]`` in the order of a Conv3d kernel's input."""
    return rearrange(vol, "b (t pt) (h ph) (w pw) f -> b (t h w) (f pt ph pw)", pt=layout.pt, ph=layout.ph, pw=layout.pw)


def unpatchify(tokens: torch.Tensor, layout: Layout, Tp: int) -> torch.Tensor:
    """``[B, Tp * S, F * pt * ph * pw]`` -> ``[B, Tp * pt, Hp * ph, Wp * pw, F]``."""
    return rearrange(tokens, "b (t h w) (f pt ph pw) -> b (t pt) (h ph) (w pw) f",
                     t=Tp, h=layout.Hp, w=layout.Wp, pt=layout.pt, ph=layout.ph, pw=layout.pw)


# -- fixed sin-cos positions (any size) ------------------------------------------------


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """``[len(positions), dim]``: sin over the first half, cos over the second (MAE convention)."""
    if dim % 2:
        raise ValueError(f"sin-cos width must be even, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.asarray(positions, dtype=np.float64).reshape(-1)[:, None] * omega[None]
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


@lru_cache(maxsize=64)
def _sincos_2d(dim: int, Hp: int, Wp: int) -> torch.Tensor:
    if dim % 4:
        raise ValueError(f"2-D sin-cos width must be divisible by 4, got {dim}")
    hh, ww = np.meshgrid(np.arange(Hp), np.arange(Wp), indexing="ij")
    emb = np.concatenate([sincos_1d(dim // 2, hh), sincos_1d(dim // 2, ww)], axis=1)
    return torch.from_numpy(emb).float()


@lru_cache(maxsize=64)
def _sincos_t(dim: int, Tp: int) -> torch.Tensor:
    return torch.from_numpy(sincos_1d(dim, np.arange(Tp))).float()


def sincos_2d(dim: int, Hp: int, Wp: int, device=None) -> torch.Tensor:
    """``[Hp * Wp, dim]`` row-major; half the width encodes the row, half the column."""
    return _sincos_2d(dim, Hp, Wp).to(device)


def sincos_t(dim: int, Tp: int, device=None) -> torch.Tensor:
    return _sincos_t(dim, Tp).to(device)


# -- spatial structure of region data ------------------------------------------------


@dataclass
class RegionGraph:
    """What UniST derives from a region dataset's adjacency or coordinates (all tensors, [N ...])."""

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
        warnings.warn("unist: region data without adjacency or coordinates: units get no position and no neighbours",
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

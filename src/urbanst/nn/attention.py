"""One pre-norm transformer block for every plain-transformer preset (UniST's encoder, decoder and prompt
network; PromptST's temporal and spatial layers), and the stacks built of it: :class:`Transformer` (blocks and a
final norm) and :class:`SpaceTimeTransformer` (temporal and spatial layers in turn).

``Block(x, prefix=None, queries=None)`` returns ``x + attention(norm(x))`` followed by ``x + MLP(norm(x))``:

* ``queries=n``: only the last n tokens are updated and returned; every token still serves as key and value
  (UniST's decoder needs outputs only where it predicts).
* ``prefix [B, p, D]``: tokens that join the keys and values for this layer only (prefix prompts, PromptST):
  the sequence attends over them and nothing is returned for them, so the next layer takes fresh ones.
* ``anchors=M``: the sequence attends through M learned anchor tokens (first the anchors read the sequence,
  then the sequence reads the anchors): O(L·M) instead of O(L²), for sequences over many units.

With ``fused_qkv`` (the default) one matrix ``qkv`` gives queries, keys and values; otherwise queries have
their own ``q`` and keys and values share ``kv``, which anchors need (their queries are not the sequence).

Two fused autograd functions keep less in memory while training: ``layer_norm_linear`` (LayerNorm then
Linear) recomputes the normalised input in the backward pass instead of keeping it, and ``gelu_linear``
(GELU then Linear) recomputes the MLP's widest activation. They compute exactly what ``Linear(LayerNorm(x))``
and ``Linear(gelu(h))`` compute (tested) and cut a block's saved activations by about a third. Every matrix
product of a linear layer, forward and backward, goes through oneDNN for fp32 on a CPU (:func:`linear`):
MKL's fp32 products run at about 40 % of oneDNN's on the AMD CPUs this was measured on. The backward pass
skips the products of frozen weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _by_onednn(x: torch.Tensor) -> bool:
    return ONEDNN and x.device.type == "cpu" and x.dtype == torch.float32 and x.numel() > 0


def _nt(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b.T + bias`` of 2-D ``a [M, K]`` and ``b [N, K]`` (either may be a transposed view): oneDNN for fp32 on
    a CPU, whose matrix products run about twice as fast as MKL's on the AMD CPUs measured (the same values to
    float rounding; benchmarks/speed_unist.py), ``F.linear`` elsewhere."""
    if _by_onednn(a):
        return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")
    return F.linear(a, b, bias)


def _linear_backward(needs: tuple[bool, bool, bool], grad: torch.Tensor, x: torch.Tensor,
                     weight: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """The gradients of ``x @ weight.T + bias`` that ``needs`` asks for (input, weight, bias); a frozen weight costs
    no product."""
    grad2, x2 = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
    grad_x = _nt(grad2, weight.t()).view(x.shape) if needs[0] else None
    grad_weight = _nt(x2.t(), grad2.t()).t().contiguous() if needs[1] else None
    return grad_x, grad_weight, grad2.sum(0) if needs[2] else None


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return _nt(x.reshape(-1, x.shape[-1]), weight, bias).view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        return _linear_backward(ctx.needs_input_grad, grad, *ctx.saved_tensors)


class _LayerNormLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, ln_weight, ln_bias, eps, weight, bias):
        normed = F.layer_norm(x, (x.shape[-1],), ln_weight, ln_bias, eps)
        ctx.save_for_backward(x, ln_weight, ln_bias, weight)
        ctx.eps = eps
        return _nt(normed.reshape(-1, x.shape[-1]), weight, bias).view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, ln_weight, ln_bias, weight = ctx.saved_tensors
        D = x.shape[-1]
        normed, mean, rstd = torch.ops.aten.native_layer_norm(x, [D], ln_weight, ln_bias, ctx.eps)
        needs = ctx.needs_input_grad
        grad_normed, grad_weight, grad_bias = _linear_backward((True, *needs[4:]), grad, normed, weight)
        gx, g_lnw, g_lnb = torch.ops.aten.native_layer_norm_backward(
            grad_normed, x, [D], mean, rstd, ln_weight, ln_bias, [needs[0], needs[1], needs[2]])
        return gx, g_lnw, g_lnb, None, grad_weight, grad_bias


class _GeluLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias):
        ctx.save_for_backward(h, weight)
        return _nt(F.gelu(h).reshape(-1, h.shape[-1]), weight, bias).view(*h.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        h, weight = ctx.saved_tensors
        grad_gelu, grad_weight, grad_bias = _linear_backward((True, *ctx.needs_input_grad[1:]), grad, F.gelu(h), weight)
        return torch.ops.aten.gelu_backward(grad_gelu, h), grad_weight, grad_bias


def _tracked(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def linear(x: torch.Tensor, weight: torch.Tensor | nn.Linear, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` (or a ``nn.Linear``'s), its products through :func:`_nt` (oneDNN for fp32 on a
    CPU), forward and backward."""
    if isinstance(weight, nn.Linear):
        weight, bias = weight.weight, weight.bias
    if not _by_onednn(x):
        return F.linear(x, weight, bias)
    if _tracked(x, weight, bias):
        return _Linear.apply(x, weight, bias)
    return _nt(x.reshape(-1, x.shape[-1]), weight, bias).view(*x.shape[:-1], weight.shape[0])


def layer_norm_linear(x: torch.Tensor, norm: nn.LayerNorm, layer: nn.Linear) -> torch.Tensor:
    if _tracked(x, norm.weight, layer.weight):
        return _LayerNormLinear.apply(x, norm.weight, norm.bias, norm.eps, layer.weight, layer.bias)
    return linear(norm(x), layer)


def gelu_linear(h: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    if _tracked(h, layer.weight):
        return _GeluLinear.apply(h, layer.weight, layer.bias)
    return linear(F.gelu(h), layer)


class Attention(nn.Module):
    """Multi-head attention through PyTorch's fused kernel (no ``[Lq, Lk]`` matrix is kept)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, fused_qkv: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.dropout = dropout
        if fused_qkv:
            self.qkv = nn.Linear(dim, 3 * dim)
        else:
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def _split(self, projected: torch.Tensor, parts: int) -> tuple[torch.Tensor, ...]:
        """``[B, L, parts * D]`` -> ``parts`` tensors ``[B, heads, L, D / heads]``."""
        B, L, _ = projected.shape
        # chunks, not indexing or unbind: the backward joins the gradients in one copy, and the attention output
        # comes back laid out [B, L, heads, D / heads], so the projection reads it without a copy
        width = projected.shape[-1] // parts // self.heads
        return tuple(part.view(B, L, self.heads, width).transpose(1, 2) for part in projected.chunk(parts, -1))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        B, h, L, e = out.shape
        return linear(out.transpose(1, 2).reshape(B, L, h * e), self.proj)

    def self_attention(self, qkv: torch.Tensor, queries: int | None = None) -> torch.Tensor:
        """``qkv [B, L, 3D]`` (the sequence through ``qkv``) -> ``[B, queries or L, D]``, for the last tokens."""
        q, k, v = self._split(qkv, 3)
        if queries is not None:
            q = q[:, :, q.shape[2] - queries :]
        return self._attend(q, k, v)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``queries [B, Lq, D]`` attend over ``keys [B, Lk, D]`` (the keys give the values too)."""
        (q,) = self._split(linear(queries, self.q), 1)
        return self._attend(q, *self._split(linear(keys, self.kv), 2))


class Block(nn.Module):
    """A pre-norm transformer layer (see the module docstring). Dropout: ``dropout`` on both residual branches,
    ``attention_dropout`` on the attention weights, ``mlp_dropout`` on the MLP's hidden activation."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, *, dropout: float = 0.0,
                 attention_dropout: float = 0.0, mlp_dropout: float = 0.0, eps: float = 1e-6,
                 fused_qkv: bool = True, anchors: int = 0):
        super().__init__()
        if anchors and fused_qkv:
            raise ValueError("attention through anchors needs separate query and key projections (fused_qkv=False)")
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, attention_dropout, fused_qkv)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)
        self.mlp_drop = nn.Dropout(mlp_dropout)
        self.anchors = nn.Parameter(torch.randn(anchors, dim) * 0.02) if anchors else None
        if anchors:
            self.anchor_attn = Attention(dim, heads, fused_qkv=False)
            self.anchor_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, prefix: torch.Tensor | None = None, queries: int | None = None) -> torch.Tensor:
        if prefix is not None:
            queries = queries or x.shape[1]
            x = torch.cat([prefix, x], 1)
        attended = self._attention(x, queries)
        if queries is not None:
            x = x[:, x.shape[1] - queries :]
        x = x + self.drop(attended)
        return x + self.drop(self._mlp(x))

    def _attention(self, x: torch.Tensor, queries: int | None) -> torch.Tensor:
        if hasattr(self.attn, "qkv"):
            return self.attn.self_attention(layer_norm_linear(x, self.norm1, self.attn.qkv), queries)
        h = self.norm1(x)
        keys = h
        if self.anchors is not None:
            keys = self.anchor_norm(self.anchor_attn(self.anchors.expand(h.shape[0], -1, -1), h))
        return self.attn(h if queries is None else h[:, h.shape[1] - queries :], keys)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        hidden = layer_norm_linear(x, self.norm2, self.fc1)
        if self.training and self.mlp_drop.p:
            return linear(self.mlp_drop(F.gelu(hidden)), self.fc2)
        return gelu_linear(hidden, self.fc2)


class Transformer(nn.Module):
    """``depth`` blocks and a final LayerNorm; ``queries=n`` asks the last block for the last n tokens only."""

    def __init__(self, depth: int, dim: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, dropout=dropout, attention_dropout=dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, queries: int | None = None) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x, queries=queries if i == len(self.blocks) - 1 else None)
        return self.norm(x)


class SpaceTimeTransformer(nn.Module):
    """Temporal and spatial layers in turn (T, S, T, S, ...) over series of tokens ``[B, G, N, S, D]`` (G groups of
    N units' series of S tokens): a temporal layer attends along each series, a spatial layer across the units at
    each token position, or with ``last_only`` at the last one only (O(N²) per series instead of O(S·N²); the next
    temporal layer spreads what it gathered). Spatial layers attend through ``anchors`` learned tokens if > 0;
    ``block`` holds the other :class:`Block` options.

    ``temporal_prefix(layer)`` ``[G, N or 1, p, D]`` and ``spatial_prefix(layer)`` ``[G, p, D]`` (or None) give
    each group's prefix tokens at a layer (prefix prompts)."""

    def __init__(self, temporal_layers: int, spatial_layers: int, dim: int, heads: int, mlp_ratio: float = 2.0, *,
                 last_only: bool = True, anchors: int = 0, **block):
        super().__init__()
        self.last_only = last_only
        self.temporal = nn.ModuleList(Block(dim, heads, mlp_ratio, **block) for _ in range(temporal_layers))
        self.spatial = nn.ModuleList(Block(dim, heads, mlp_ratio, anchors=anchors, **block) for _ in range(spatial_layers))
        self.order = [(kind, i) for i in range(max(temporal_layers, spatial_layers))
                      for kind, layers in (("t", temporal_layers), ("s", spatial_layers)) if i < layers]

    def forward(self, tokens: torch.Tensor, temporal_prefix=None, spatial_prefix=None) -> torch.Tensor:
        B, G, N, S, _ = tokens.shape
        for kind, layer in self.order:
            if kind == "t":
                prefix = None if temporal_prefix is None else temporal_prefix(layer).expand(B, G, N, -1, -1)
                out = self.temporal[layer](rearrange(tokens, "b g n s d -> (b g n) s d"),
                                           None if prefix is None else rearrange(prefix, "b g n p d -> (b g n) p d"))
                tokens = rearrange(out, "(b g n) s d -> b g n s d", b=B, g=G)
            else:
                mixed = tokens[:, :, :, -1:] if self.last_only else tokens
                prefix = None if spatial_prefix is None else spatial_prefix(layer)
                if prefix is not None:
                    prefix = rearrange(prefix.expand(B, mixed.shape[3], G, -1, -1), "b s g p d -> (b g s) p d")
                out = self.spatial[layer](rearrange(mixed, "b g n s d -> (b g s) n d"), prefix)
                out = rearrange(out, "(b g s) n d -> b g n s d", b=B, g=G)
                tokens = out if mixed.shape[3] == S else torch.cat([tokens[:, :, :, :-1], out], 3)
        return tokens


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform linears with zero bias, unit LayerNorms (the masked autoencoders' convention)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

"""UrbanGPT's spatio-temporal encoder: gated dilated convolutions with multi-level correlation injection.

Every region's series is encoded on its own (``[regions, channels, time]``; no weight is tied to a
region), so the encoder runs on any number of regions. A 1x1 convolution lifts the inputs to
``channels``; three gated layers ``tanh(filter(h)) * sigmoid(gate(h))`` use dilated inception
convolutions (kernels 2/3/6/7, dilations 1, 2, 4; causal, left-padded so every layer keeps the
length) with residual connections; the input and every layer's output are injected into the
result by skip convolutions (1x1 over channels, weighting every time step, as in MTGNN from which
UrbanGPT's encoder derives), with the last residual stream, summed ("multi-level correlation injection"). Two end 1x1
layers turn the sum into ``tokens`` ST tokens of ``token_dim`` each.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KERNELS = (2, 3, 6, 7)


class DilatedInception(nn.Module):
    """Parallel causal dilated convolutions with kernels 2/3/6/7, their outputs stacked on channels."""

    def __init__(self, cin: int, cout: int, dilation: int):
        super().__init__()
        if cout % len(KERNELS):
            raise ValueError(f"channels ({cout}) must be divisible by {len(KERNELS)}")
        self.dilation = dilation
        self.convs = nn.ModuleList(nn.Conv1d(cin, cout // len(KERNELS), k, dilation=dilation) for k in KERNELS)

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The four convolutions as one of kernel 7: shorter kernels left-padded with zeros (same output)."""
        top = max(KERNELS)
        weight = torch.cat([F.pad(conv.weight, (top - k, 0)) for k, conv in zip(KERNELS, self.convs)])
        return weight, torch.cat([conv.bias for conv in self.convs])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [M, cin, T] -> [M, cout, T]
        return gated_conv([self], x)


def gated_conv(inceptions: list[DilatedInception], x: torch.Tensor) -> torch.Tensor:
    """Several inceptions of one dilation over the same input as one matrix product (the taps gathered
    first: far faster on CPU than small-channel convolutions), outputs stacked on channels."""
    weights, biases = zip(*(inc.kernel() for inc in inceptions))
    weight, d, top = torch.cat(weights), inceptions[0].dilation, max(KERNELS)
    taps = F.pad(x, ((top - 1) * d, 0)).unfold(2, (top - 1) * d + 1, 1)[..., ::d]  # [M, cin, T, top]
    out = F.linear(taps.permute(0, 2, 1, 3).flatten(2), weight.flatten(1), torch.cat(biases))  # [M, T, cout]
    return out.transpose(1, 2)


def _pointwise(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A convolution whose kernel spans the whole input (1 output step, or a 1x1 on one step) as a matrix product."""
    return F.linear(x.flatten(1), conv.weight.flatten(1), conv.bias)


class GatedTemporalEncoder(nn.Module):
    """``[M, in_channels, length]`` series of M regions -> ``[M, tokens, token_dim]`` ST tokens."""

    def __init__(self, in_channels: int, length: int, channels: int = 32, skip_channels: int = 64,
                 token_dim: int = 64, tokens: int = 2, dilations: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.tokens, self.token_dim = tokens, token_dim
        self.start = nn.Conv1d(in_channels, channels, 1)
        self.filters = nn.ModuleList(DilatedInception(channels, channels, d) for d in dilations)
        self.gates = nn.ModuleList(DilatedInception(channels, channels, d) for d in dilations)
        self.residuals = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in dilations)
        # skip injection: the raw input and each layer's output, over all time steps, to skip_channels
        self.skip_in = nn.Conv1d(in_channels, skip_channels, length)
        self.skips = nn.ModuleList(nn.Conv1d(channels, skip_channels, length) for _ in dilations)
        self.skip_out = nn.Conv1d(channels, skip_channels, length)  # and the last layer's residual stream
        self.end = nn.Sequential(nn.ReLU(), nn.Conv1d(skip_channels, skip_channels, 1), nn.ReLU(),
                                 nn.Conv1d(skip_channels, tokens * token_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = _pointwise(self.skip_in, x)  # [M, skip_channels]
        h = _channels(self.start, x)
        for filt, gate, res, skip_conv in zip(self.filters, self.gates, self.residuals, self.skips):
            f, g = gated_conv([filt, gate], h).chunk(2, dim=1)
            out = torch.tanh(f) * torch.sigmoid(g)
            skip = skip + _pointwise(skip_conv, out)
            h = h + _channels(res, out)
        skip = skip + _pointwise(self.skip_out, h)
        return self.end(skip[:, :, None]).view(x.shape[0], self.tokens, self.token_dim)


def _channels(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution ``[M, cin, T] -> [M, cout, T]`` as a matrix product."""
    return F.linear(x.transpose(1, 2), conv.weight[..., 0], conv.bias).transpose(1, 2)

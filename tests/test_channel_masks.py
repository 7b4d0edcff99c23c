"""Channel-aware masks: each hides exactly what it claims, per window and per channel, and only visible entries."""

from __future__ import annotations

import pytest
import torch

from urbanst.data.channel_masks import channel_mask, hidden_count
from urbanst.errors import UrbanstError

B, T, N, C = 5, 6, 10, 4  # ratio 0.5: 3 of 6 steps, or 5 of 10 units, per window and channel


def all_visible() -> torch.Tensor:
    return torch.ones(B, T, N, C, dtype=torch.bool)


def is_temporal(hidden: torch.Tensor) -> bool:
    """``[T, N]`` hides whole steps: exactly 3 of them, at every unit."""
    steps = hidden.all(1)
    return bool(((hidden.all(1) | ~hidden.any(1)).all()) and steps.sum() == 3)


def is_spatial(hidden: torch.Tensor) -> bool:
    """``[T, N]`` hides whole units: exactly 5 of them, at every step."""
    units = hidden.all(0)
    return bool(((hidden.all(0) | ~hidden.any(0)).all()) and units.sum() == 5)


def test_temporal_hides_three_whole_steps_of_each_channel():
    hidden = channel_mask("temporal", all_visible(), 0.5, torch.Generator().manual_seed(0))
    assert hidden.shape == (B, T, N, C)
    assert (hidden.sum((1, 2)) == 3 * N).all(), "30 entries per window and channel"
    assert all(is_temporal(hidden[b, :, :, c]) for b in range(B) for c in range(C))
    steps = hidden[:, :, 0, :]  # [B, T, C]: which steps each channel hides
    assert any(not torch.equal(steps[b, :, 0], steps[b, :, c]) for b in range(B) for c in range(1, C)), \
        "each channel draws its own steps"


def test_spatial_hides_five_whole_units_of_each_channel():
    hidden = channel_mask("spatial", all_visible(), 0.5, torch.Generator().manual_seed(1))
    assert (hidden.sum((1, 2)) == 5 * T).all(), "30 entries per window and channel"
    assert all(is_spatial(hidden[b, :, :, c]) for b in range(B) for c in range(C))
    units = hidden[:, 0]  # [B, N, C]
    assert any(not torch.equal(units[b, :, 0], units[b, :, c]) for b in range(B) for c in range(1, C))


def test_agnostic_is_temporal_or_spatial_drawn_per_channel():
    hidden = channel_mask("agnostic", torch.ones(40, T, N, C, dtype=torch.bool), 0.5, torch.Generator().manual_seed(2))
    kinds = [[is_temporal(hidden[b, :, :, c]) for c in range(C)] for b in range(40)]
    for b in range(40):
        for c in range(C):
            assert kinds[b][c] != is_spatial(hidden[b, :, :, c]), "exactly one of the two shapes"
    assert any(len(set(row)) == 2 for row in kinds), "one window mixes both shapes across its channels"
    share = sum(map(sum, kinds)) / (40 * C)
    assert 0.3 < share < 0.7


@pytest.mark.parametrize("strategy", ["temporal", "spatial", "agnostic"])
def test_only_visible_entries_are_hidden_and_the_new_input_never_overlaps_them(strategy):
    generator = torch.Generator().manual_seed(3)
    visible = torch.rand(B, T, N, C, generator=generator) > 0.3
    full = channel_mask(strategy, all_visible(), 0.5, torch.Generator().manual_seed(4))
    hidden = channel_mask(strategy, visible, 0.5, torch.Generator().manual_seed(4))
    assert torch.equal(hidden, full & visible), "the same draw, restricted to what is visible"
    new_input = visible & ~hidden
    assert not (new_input & hidden).any()
    assert torch.equal(new_input | hidden, visible), "nothing visible is lost, nothing invisible appears"


def test_counts_keep_one_entry_on_each_side_and_bad_settings_fail():
    assert [hidden_count(0.5, n) for n in (1, 2, 3, 10)] == [1, 1, 2, 5]
    assert hidden_count(0.01, 10) == 1 and hidden_count(0.99, 10) == 9
    with pytest.raises(UrbanstError, match="unknown channel mask"):
        channel_mask("random", all_visible())
    with pytest.raises(UrbanstError, match="ratio"):
        channel_mask("spatial", all_visible(), 1.0)

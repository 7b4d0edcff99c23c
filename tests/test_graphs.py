"""Graph builders against hand-computed values: three stations, a known wind."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from urbanst.data.graphs import (
    bearings_deg,
    default_sigma,
    distances_km,
    gaussian_kernel,
    great_circle_km,
    normalise_rows,
    wind_graph,
)

# Projected (northing, easting) metres: A at the origin, B 3 km east of A, C 4 km north of A.
# So d(A,B) = 3, d(A,C) = 4, d(B,C) = 5 km; bearings A->B 90, A->C 0, B->C 360 - atan(3/4) = 323.13 deg.
METRES = np.array([[0.0, 0.0], [0.0, 3000.0], [4000.0, 0.0]])


def test_distances_and_bearings_by_hand():
    d = distances_km(METRES, "metres")
    np.testing.assert_allclose(d, [[0, 3, 4], [3, 0, 5], [4, 5, 0]], atol=1e-9)
    b = bearings_deg(METRES, "metres")
    expected = [[0, 90, 0], [270, 0, 323.130102], [180, 143.130102, 0]]
    np.testing.assert_allclose(b, expected, atol=1e-5)


def test_great_circle_by_hand():
    # one degree of latitude on a sphere of radius 6371.0088 km: 6371.0088 * pi / 180 = 111.19508 km
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(great_circle_km(coords[:1], coords[1:2]), [[111.19508]], rtol=1e-6)
    np.testing.assert_allclose(distances_km(coords)[0, 2], 111.19508, rtol=1e-6)  # along the equator too
    b = bearings_deg(coords)
    assert b[0, 1] == pytest.approx(0.0, abs=1e-9) and b[0, 2] == pytest.approx(90.0, abs=1e-9)
    assert b[1, 0] == pytest.approx(180.0, abs=1e-9)


def test_static_kernel_by_hand():
    d = distances_km(METRES, "metres")
    a = gaussian_kernel(d, sigma=2.0)  # exp(-d^2 / 8)
    expected = [[1, 0.324652, 0.135335], [0.324652, 1, 0.043937], [0.135335, 0.043937, 1]]
    np.testing.assert_allclose(a, expected, atol=1e-6)
    # default width: population std of the off-diagonal distances 3, 4, 3, 5, 4, 5 = sqrt(4 / 6) = 0.816497
    assert default_sigma(d) == pytest.approx(0.816497, abs=1e-6)
    np.testing.assert_allclose(gaussian_kernel(d)[0, 1], math.exp(-9 / (2 * 4 / 6)), rtol=1e-6)


def test_wind_graph_by_hand():
    d, b = distances_km(METRES, "metres"), bearings_deg(METRES, "metres")
    # A: 2 m/s FROM the west (270) -> blows towards the east, onto B; width 2 + 0.5 * 2 = 3 km
    # B: calm, FROM the south (180) -> towards the north; C lies at 323.13 deg: cos(36.87 deg) = 0.8; width 2 km
    # C: speed and direction missing -> calm (width 2 km), no directional factor (cos = 1)
    speed = np.array([2.0, 0.0, np.nan])
    direction = np.array([270.0, 180.0, np.nan])
    a = wind_graph(d, b, speed, direction, sigma0=2.0, alpha=0.5)
    expected = [
        [1.0, math.exp(-9 / 18), 0.0],  # A->B downwind: exp(-0.5) = 0.606531; A->C crosswind: cos 90 = 0
        [0.0, 1.0, 0.8 * math.exp(-25 / 8)],  # B->A: cos 270 = 0; B->C: 0.8 * 0.043937 = 0.035150
        [math.exp(-16 / 8), math.exp(-25 / 8), 1.0],  # C: isotropic 0.135335, 0.043937
    ]
    np.testing.assert_allclose(a, expected, atol=1e-6)
    assert isinstance(a, np.ndarray)
    # wind FROM the north at A blows south: B (90 deg) is crosswind, C (0 deg) upwind -> both 0 after clipping
    a = wind_graph(d, b, np.array([2.0, 0, 0]), np.array([0.0, 0, 0]), sigma0=2.0, alpha=0.5)
    assert a[0, 1] == pytest.approx(0.0, abs=1e-12) and a[0, 2] == 0.0


def test_wind_graph_batched_in_torch_and_receiver_normalisation():
    d = torch.as_tensor(distances_km(METRES, "metres"), dtype=torch.float32)
    b = torch.as_tensor(bearings_deg(METRES, "metres"), dtype=torch.float32)
    speed = torch.rand(5, 7, 3) * 4
    direction = torch.rand(5, 7, 3) * 360
    a = wind_graph(d, b, speed, direction, sigma0=2.0)
    assert a.shape == (5, 7, 3, 3) and (a >= 0).all() and torch.all(a.diagonal(dim1=-2, dim2=-1) == 1)
    single = wind_graph(d, b, speed[2, 4], direction[2, 4], sigma0=2.0)
    torch.testing.assert_close(a[2, 4], single)
    rows = normalise_rows(a.transpose(-1, -2))
    torch.testing.assert_close(rows.sum(-1), torch.ones(5, 7, 3))

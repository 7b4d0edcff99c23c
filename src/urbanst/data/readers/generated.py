"""The generated datasets: the synthetic city (grid and regions) and the synthetic air-quality network."""

from __future__ import annotations

from pathlib import Path

from urbanst.data.container import STData
from urbanst.data.declaration import DatasetSpec
from urbanst.data.synthetic import make_city
from urbanst.data.synthetic_air import make_air


def read_synthetic_grid(_root: Path) -> STData:
    return make_city("grid", grid=(8, 8), weeks=8, name="synthetic_grid")


def read_synthetic_region(_root: Path) -> STData:
    return make_city("region", num_units=40, weeks=8, name="synthetic_region")


def read_synthetic_air(_root: Path) -> STData:
    return make_air()


DATASETS = (
    DatasetSpec("synthetic_grid", "Synthetic city: 8x8 grid of 1 km cells, 8 weeks hourly, trips in/out (embedded)",
                read_synthetic_grid),
    DatasetSpec("synthetic_region", "Synthetic city: 40 irregular regions, 8 weeks hourly, trips in/out (embedded)",
                read_synthetic_region),
    DatasetSpec("synthetic_air", "Synthetic air quality: 6 stations, 4 weeks hourly, PM2.5 + NO2, weather and wind "
                "(embedded)", read_synthetic_air),
)

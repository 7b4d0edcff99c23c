"""Readers of the real datasets; importing this package registers each of them by name."""

from urbanst.data.readers import (  # noqa: F401
    alboran_sst,
    aqi36,
    beijing_air,
    chi_crime,
    la_loop,
    montevideo_bus,
    nyc_bike_grid,
    nyc_crime,
    nyc_taxi_grid,
    nyc_zones,
)

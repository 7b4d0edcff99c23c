"""NetCDF files through xarray: one or more variables with a time dimension become the channels.

netCDF-3 files are read with scipy (always installed); netCDF-4/HDF5 files need the ``netCDF4``
or ``h5netcdf`` package (the error says so). Fill values become masked. One data variable with
a time dimension is imported (pick it with ``attribute=`` when there are several; a list picks
several variables of the same dimensions as channels):

- dims (time, lat, lon) (or (time, y, x)): a grid, N = H*W row-major, ``grid_shape``
  kept, coordinates from 1-D or 2-D ``lat``/``lon`` variables when present;
- dims (time, station) (any name for the second): units, named by that coordinate,
  with coordinates from ``lat``/``lon`` variables along it when present.

Cells that are never observed (land in a sea field) stay as all-masked units.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.importers.raw import Raw, select_names
from urbanst.data.importers.time_axis import assumed_axis, naive_utc, place_on_axis
from urbanst.errors import UrbanstError

NETCDF_SUFFIXES = (".nc", ".nc4", ".cdf", ".netcdf")
TIME_NAMES = ("time", "times", "t", "date", "datetime", "timestamp")
LAT_NAMES = ("lat", "latitude", "y", "nav_lat", "rlat")
LON_NAMES = ("lon", "longitude", "lng", "long", "x", "nav_lon", "rlon")


def _netcdf_engine(path: Path) -> str:
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic[:3] == b"CDF" and magic[3:4] in (b"\x01", b"\x02", b"\x05"):
        return "scipy"
    if magic == b"\x89HDF\r\n\x1a\n":
        for module, engine in (("netCDF4", "netcdf4"), ("h5netcdf", "h5netcdf")):
            if importlib.util.find_spec(module) is not None:
                return engine
        raise UrbanstError(
            f"{path} is a netCDF-4 (HDF5) file; reading it needs the netCDF4 or h5netcdf package "
            "(pip install h5netcdf), or convert it to netCDF-3 (nccopy -k classic)"
        )
    raise UrbanstError(
        f"cannot read {path} as NetCDF: it does not start like a netCDF-3 or netCDF-4 file (first bytes {magic[:4]!r})"
    )


def read_netcdf(path: Path, step: pd.Timedelta | None, start: pd.Timestamp | None, attribute) -> Raw:
    import xarray as xr

    engine = _netcdf_engine(path)
    try:
        ds = xr.open_dataset(path, engine=engine, mask_and_scale=True, decode_times=True)
    except Exception as err:  # third-party parsers raise many types on damaged files
        raise UrbanstError(f"cannot read {path} as NetCDF: damaged or truncated ({type(err).__name__}: {err})") from None
    try:
        raw = _netcdf_to_raw(ds, path, step, start, attribute)
    except UrbanstError:
        raise
    except Exception as err:  # data are read lazily: damage may show only now
        raise UrbanstError(f"cannot read {path} as NetCDF: damaged or truncated ({type(err).__name__}: {err})") from None
    finally:
        ds.close()
    raw.source_details["engine"] = engine
    return raw


def _time_dim(da) -> str | None:
    for dim in da.dims:
        if dim in da.coords and np.issubdtype(da.coords[dim].dtype, np.datetime64):
            return dim
    for dim in da.dims:
        if str(dim).lower() in TIME_NAMES:
            return dim
    return None


def _netcdf_to_raw(ds, path: Path, step, start, attribute) -> Raw:
    candidates = []
    for var_name, da in ds.data_vars.items():
        if _time_dim(da) is not None and da.ndim in (2, 3) and da.dtype.kind in "biuf":
            candidates.append(str(var_name))
    if not candidates:
        shown = {str(k): tuple(str(d) for d in v.dims) for k, v in ds.data_vars.items()}
        raise UrbanstError(
            f"{path}: no numeric variable with a time dimension and one or two spatial dimensions; variables: "
            f"{shown}. urbanst imports (time, lat, lon) grids or (time, station) series"
        )
    if attribute is None:
        if len(candidates) > 1:
            raise UrbanstError(f"{path} holds several variables {candidates}; choose one with attribute=...")
        chosen = candidates
    else:
        chosen = select_names(candidates, attribute, path, "variable with a time dimension")
    first = ds[chosen[0]]
    for v in chosen[1:]:
        if set(ds[v].dims) != set(first.dims):
            raise UrbanstError(f"{path}: variables {chosen} do not share dimensions ({first.dims} vs {ds[v].dims})")
    notes: list[str] = []
    tdim = _time_dim(first)
    space = [d for d in first.dims if d != tdim]
    order = (tdim, *_order_grid_dims(space)) if len(space) == 2 else (tdim, space[0])
    arrays, units = [], []
    nan_count = inf_count = 0
    for v in chosen:
        raw = np.asarray(ds[v].transpose(*order).values, dtype=np.float64)
        # xarray turned values equal to a declared _FillValue / missing_value into NaN: those are the source's
        # own missing marks and are not counted (nor, then, any NaN stored as such). Otherwise (no fill value,
        # or a NaN one) a NaN in the file is counted like an empty or NaN cell of a CSV.
        if not _has_fill_value(ds[v]):
            nan_count += int(np.isnan(raw).sum())
        inf_count += int(np.isinf(raw).sum())
        arrays.append(raw.reshape(raw.shape[0], -1))
        units.append(str(ds[v].attrs["units"]) if "units" in ds[v].attrs else None)
    values = np.stack(arrays, axis=-1)
    observed = np.isfinite(values)
    T = values.shape[0]

    # time axis
    tvals = np.asarray(first.coords[tdim].values) if tdim in first.coords else None
    absent = 0
    if tvals is not None and np.issubdtype(tvals.dtype, np.datetime64):
        ts = naive_utc(pd.DatetimeIndex(tvals), notes)
        if ts.isna().any():
            raise UrbanstError(f"{path}: the time coordinate {tdim!r} has {int(ts.isna().sum())} empty (NaT) entries")
        axis, values, observed, absent = place_on_axis(ts, values, observed, step, path, notes)
    elif tvals is not None:
        raise UrbanstError(
            f"{path}: the time coordinate {tdim!r} could not be read as dates (dtype {tvals.dtype}, "
            f"units {first.coords[tdim].attrs.get('units')!r}); use a standard calendar and CF units "
            "such as 'hours since 2020-01-01'"
        )
    else:
        axis = assumed_axis(T, start, step, f"the time dimension {tdim!r} has no dates", notes)

    grid_shape = coords = unit_names = None
    if len(space) == 2:
        H, W = int(ds.sizes[order[1]]), int(ds.sizes[order[2]])
        grid_shape = (H, W)
        coords = _grid_coords(ds, order[1], order[2])
        notes.append(f"grid {H}x{W} from dims ({order[1]}, {order[2]}), units in row-major order.")
    else:
        sdim = order[1]
        if sdim in ds.coords:
            names = [s.decode() if isinstance(s, bytes) else str(s) for s in np.asarray(ds.coords[sdim].values)]
            unit_names = names if len(set(names)) == len(names) else None
        coords = _station_coords(ds, sdim)
    return Raw(
        values=values,
        observed=observed,
        timestamps=axis,
        attributes=list(chosen),
        units=units,
        unit_names=unit_names,
        coords=coords,
        grid_shape=grid_shape,
        nan_values=nan_count,
        inf_values=inf_count,
        absent_values=absent,
        notes=notes,
        source_details={"variables": list(chosen)},
    )


def _has_fill_value(da) -> bool:
    """True when the variable declares a fill/missing value other than NaN (xarray decoded those to NaN)."""
    for d in (da.encoding, da.attrs):
        for key in ("_FillValue", "missing_value"):
            fill = d.get(key)
            if fill is None:
                continue
            fills = np.atleast_1d(np.asarray(fill))
            if fills.dtype.kind not in "fc" or not np.isnan(fills).all():
                return True
    return False


def _order_grid_dims(space: list) -> tuple:
    a, b = space
    if str(a).lower() in LON_NAMES and str(b).lower() in LAT_NAMES:
        return b, a
    return a, b  # file order: (rows, cols)


def _find_var(ds, names: tuple[str, ...]):
    lowered = {str(k).lower(): k for k in list(ds.coords) + list(ds.data_vars)}
    for n in names:
        if n in lowered:
            return ds[lowered[n]]
    return None


def _grid_coords(ds, ydim, xdim):
    lat = _find_var(ds, ("lat", "latitude", "nav_lat"))
    lon = _find_var(ds, ("lon", "longitude", "nav_lon", "lng"))
    if lat is None or lon is None:
        return None
    if lat.dims == (ydim,) and lon.dims == (xdim,):
        la, lo = np.meshgrid(np.asarray(lat.values, dtype=np.float64), np.asarray(lon.values, dtype=np.float64), indexing="ij")
    elif set(lat.dims) == {ydim, xdim} and set(lon.dims) == {ydim, xdim}:
        la = np.asarray(lat.transpose(ydim, xdim).values, dtype=np.float64)
        lo = np.asarray(lon.transpose(ydim, xdim).values, dtype=np.float64)
    else:
        return None
    return np.stack([la.reshape(-1), lo.reshape(-1)], axis=1)


def _station_coords(ds, sdim):
    lat = _find_var(ds, ("lat", "latitude"))
    lon = _find_var(ds, ("lon", "longitude", "lng"))
    if lat is None or lon is None or lat.dims != (sdim,) or lon.dims != (sdim,):
        return None
    return np.stack([np.asarray(lat.values, dtype=np.float64), np.asarray(lon.values, dtype=np.float64)], axis=1)

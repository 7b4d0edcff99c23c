"""Readers of the real datasets; importing this package registers each of them by name."""

from urbanst.data.readers import nyc_zones  # noqa: F401

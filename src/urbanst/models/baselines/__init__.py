"""Baselines every result table carries: historical average, last value, seasonal naive, ridge."""

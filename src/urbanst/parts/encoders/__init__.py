"""Encoders: spatio-temporal data to tokens."""

"""Metrics, traces and logs of the data plane."""

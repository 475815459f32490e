"""Baseline servers the benchmark drives with the same load generator as chinwag."""

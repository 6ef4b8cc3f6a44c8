"""Benchmarks, each run as ``python -m benchmarks.NAME`` (``make bench`` runs them all)."""

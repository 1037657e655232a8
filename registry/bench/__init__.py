"""Benchmarks that measure the service against a baseline taken in the same run, on the same machine."""

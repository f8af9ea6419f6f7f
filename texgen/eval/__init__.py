"""Measuring texture quality (metrics) for reports and benchmarks."""

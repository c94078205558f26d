"""Benchmarks of the export against the MySQL floor and against dlt (see docs/BENCHMARKS.md)."""

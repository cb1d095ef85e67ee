"""Benchmarks that print figures (`make bench`); run as scripts with PYTHONPATH=.."""

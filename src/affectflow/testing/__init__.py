"""Test support: generated datasets and tables for tests and benchmarks. The product never imports it."""

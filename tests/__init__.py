"""Mitra test suite."""

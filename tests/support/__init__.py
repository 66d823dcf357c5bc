"""Helpers shared by the test rings."""

"""Thin command-line wrappers; the work happens in importable functions."""

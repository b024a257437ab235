"""Retain's command line: one entry point for every job (``python -m retain --help``)."""

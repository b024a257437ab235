"""Retention analytics: cohorts, KPIs, lifecycle stages and the HTML report.

Reads the validated contract tables (``features.sources.Tables``) and imports
nothing but ``features/``, so training and serving can both use it.
"""

"""Scoring for campaigns: one scoring function behind the HTTP service, the batch job and Spark.

``models`` loads the champions, ``scoring`` turns feature rows into scores, ``store``
holds the feature snapshot the service reads, ``service`` / ``batch`` / ``spark`` are
the three ways in. Nothing here imports ``training``.
"""

"""Retention analytics: cohorts, KPIs and the HTML report (``analytics.report``, its sections beside it).

Reads the validated contract tables (``features.sources.Tables``) and the shared rules of ``modeling/``
(lifecycle stages, risk bands); only the CLI imports it, never training or serving.
"""

"""Feature builders, one module per source, registered in ``REGISTRY``.

Each module has ``build(snapshot) -> DataFrame`` indexed by customer_id, with
columns named ``<source>_<measure>_<window>``. Adding a source is one module
and one line here.
"""

from features.builders import behavior, demographics, sales, social

REGISTRY = (sales, behavior, demographics, social)

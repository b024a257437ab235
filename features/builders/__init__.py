"""Feature builders, one module per source, registered in ``REGISTRY``.

Each module has ``build(snapshot, config) -> DataFrame`` indexed by customer_id
(or cid), with columns named ``<source>_<measure>_<window>``. A builder whose
output depends on the whole population (which levels keep their name, which
interests get a column) also has ``learn(snapshot, config)`` and reads its
choices through ``snapshot.learned``. Adding a source is one module and one
line here.
"""

from features.builders import behavior, demographics, lifetime, sales, social

REGISTRY = (sales, lifetime, behavior, demographics, social)

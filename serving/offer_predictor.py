"""Where offer champions registered before the ``modeling`` package find their pyfunc class (models from code)."""

from modeling.offer_model import OfferPolicyModel

__all__ = ["OfferPolicyModel"]

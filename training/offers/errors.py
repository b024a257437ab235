"""The one refusal of offer training."""


class OfferLogError(ValueError):
    """The offers log (or the settings) cannot train an offer model; the message says why and what to do."""

"""The offer model's pyfunc, logged as code (MLflow models-from-code): no pickled class, no CloudPickle.

MLflow runs this file when it loads the model; ``modeling.offer_model`` and the
``features`` modules it needs travel in the model's ``code/`` folder, so plain MLflow
(``mlflow models predict``, ``mlflow models serve``) loads it without this repository.
"""

import mlflow

from modeling.offer_model import OfferPolicyModel

mlflow.models.set_model(OfferPolicyModel())

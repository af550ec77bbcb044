"""The BentoML service the benchmark runs: the pipeline's probabilities and labels, as mlstack
answers. Copied next to a scratch folder as service.py and started with `bentoml serve`."""

import os

import bentoml
import joblib
import numpy as np


@bentoml.service(workers=int(os.environ.get("BENTOML_WORKERS", "1")))
class Model:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["MODEL_PATH"])

    @bentoml.api
    def predict(self, rows: list[list[float]]) -> dict:
        probabilities = self.model.predict_proba(np.asarray(rows))
        labels = self.model.classes_[probabilities.argmax(axis=1)]
        return {"predictions": labels.tolist(), "probabilities": probabilities.tolist()}

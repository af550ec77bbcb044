"""SageMaker's scikit-learn serving stack, rebuilt for the benchmark.

The scikit-learn container's serving module (not published on PyPI) wires these default
functions into sagemaker-containers' Transformer and Flask Worker, and runs the app under
gunicorn with gevent workers behind nginx. This is that module with the user script's
`model_fn` (joblib.load of model.joblib, as SageMaker's examples write it) inlined; nginx is
left out, which only spares it work.
"""

import collections
import collections.abc
import os

# sagemaker-containers 2.8 predates Python 3.10, which moved these ABCs out of `collections`;
# SageMaker's own images run it on an older Python.
for _name in ("Mapping", "MutableMapping", "Sequence", "Iterable", "Callable"):
    setattr(collections, _name, getattr(collections.abc, _name))

import joblib  # noqa: E402 (after the compatibility shim above)
import numpy as np  # noqa: E402
from sagemaker_containers.beta.framework import (  # noqa: E402
    content_types,
    encoders,
    transformer,
    worker,
)


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(input_data, content_type):
    array = encoders.decode(input_data, content_type)
    return array.astype(np.float32) if content_type in content_types.UTF8_TYPES else array


def predict_fn(input_data, model):
    return model.predict(input_data)


def output_fn(prediction, accept):
    return worker.Response(encoders.encode(prediction, accept), accept, mimetype=accept)


_transformer = transformer.Transformer(
    model_fn=lambda _: model_fn(os.environ["SM_MODEL_DIR"]),
    input_fn=input_fn,
    predict_fn=predict_fn,
    output_fn=output_fn,
)
app = None


def main(environ, start_response):
    global app
    if app is None:
        _transformer.initialize()
        app = worker.Worker(
            transform_fn=_transformer.transform, module_name="sagemaker_sklearn_app"
        )
    return app(environ, start_response)

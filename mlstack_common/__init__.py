"""What the training and serving images share: the model artifact's format, the fast path that
predicts without scikit-learn, storage (local paths and S3) and the model registry, one log
format and one exit-status table. Both images hold this package; neither holds the other's."""

"""The test suite. Importing it (pytest does, before any test module) sets what every test
process and the commands it starts share."""

import os

# One OpenMP thread per process. scikit-learn's histogram boosting otherwise starts a thread per
# core, and with two test processes (or a server, or a build) on a two-core machine its threads
# spin waiting for each other: one demo fit took 70 s instead of 1 s. Set before scikit-learn
# loads its OpenMP runtime, which reads it once; an explicit setting is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")

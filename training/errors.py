"""Errors of a training run that the command line maps to exit codes; importing this is cheap."""


class InputError(ValueError):
    """What the run was pointed at does not exist or is not usable; the message names it."""


class StatisticsError(InputError):
    """A statistic training would record beside the model (the drift baseline, a feature's
    range) is not a finite number. Written out it would be a JSON null that neither the drift
    job nor serving can compare with, so the run stops before anything is published."""

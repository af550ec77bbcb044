"""Errors of a training run that the command line maps to exit codes; importing this is cheap."""


class InputError(ValueError):
    """What the run was pointed at does not exist or is not usable; the message names it."""

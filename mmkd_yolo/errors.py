"""Exceptions that name a problem in the user's input and how to fix it."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not fit the model."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint's pickle names code to run; it is refused, not loaded."""


class ConfigError(ValueError):
    """A config asks for something that cannot work (names, widths, class counts)."""


class DataError(ValueError):
    """A dataset file or label is missing or malformed; the message names file and line."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training stops instead of going on with garbage."""

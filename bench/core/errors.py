"""Errors that the CLI reports as one clear line instead of a traceback."""


class BenchError(Exception):
    """A user-facing error: bad input, bad configuration, missing weights."""


class ImageSkip(BenchError):
    """An image that cannot be used; the message is the one-line reason recorded for it."""

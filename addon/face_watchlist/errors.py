"""The errors the service reports to a user: each carries a message meant to be read as it is."""


class FaceWatchlistError(Exception):
    """Base class: the CLI prints these without a traceback."""


class ImageError(FaceWatchlistError):
    """An image file is missing, empty, not an image, truncated or too large."""


class ModelPackError(FaceWatchlistError):
    """A model pack is unknown, not installed, fails verification or cannot be fetched."""


class NoFaceError(FaceWatchlistError):
    """An operation needed a face and the image had none."""

"""Errors raised when a dataset cannot be loaded."""

from ..errors import UserError


class DatasetError(UserError, RuntimeError):
    """A dataset cannot be loaded; the message names the files concerned and the fix."""


class DatasetUnavailableError(DatasetError):
    """A requested dataset is not on disk and could not be fetched.

    The message always names the dataset, the folder that was searched and how to obtain the
    files (network download, an offline package, or where to copy them by hand).
    """

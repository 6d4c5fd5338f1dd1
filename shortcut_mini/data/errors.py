"""Error raised when a dataset is neither on disk nor downloadable."""


class DatasetUnavailableError(RuntimeError):
    """A requested dataset is not on disk and could not be fetched.

    The message always names the dataset, the folder that was searched and how to obtain the
    files (network download, an offline package, or where to copy them by hand).
    """

"""The lab's user-facing error: the ``lab`` command prints it as one line and exits with status 2."""


class LabError(Exception):
    """A user-facing error: printed as one line, exit status 2."""

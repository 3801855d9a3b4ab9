"""The lab's user-facing error, which the ``lab`` command prints as one line with exit status 2, and
the check every command makes before it writes anywhere."""

import os
import tempfile


class LabError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def check_writable(path: str, what: str) -> None:
    """Raise LabError unless ``path`` is (or can be created as) a writable directory; ``what``
    names it in the message (``"--out"``). Creates nothing."""
    probe = os.path.abspath(path)
    if os.path.exists(probe) and not os.path.isdir(probe):
        raise LabError(f"{what} {path!r} is not a directory")
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise LabError(f"{what} {path!r} cannot be created: {probe!r} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise LabError(f"{what} {path!r} is not writable ({err.strerror or err})") from None

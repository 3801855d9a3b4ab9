"""Ctrl-C at a safe point: :class:`DeferredInterrupt` turns the first SIGINT into a flag that a loop
checks between steps (to save its work first); a second one interrupts at once.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["DeferredInterrupt"]


class DeferredInterrupt:
    """While active, the first SIGINT only sets :attr:`requested`; a second one raises
    ``KeyboardInterrupt`` at once. Only installed in the main thread (signals cannot be caught
    elsewhere), and only if ``enabled``.

        with DeferredInterrupt(enabled=True) as ctrl_c:
            for step in steps:
                ...
                if ctrl_c.requested:
                    save(); raise KeyboardInterrupt
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        del signum, frame
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)
        return False

"""Sign-based and step-size rules: sign SGD, Signum, Lion, noisy SGD, Rprop, Polyak SGD,
optimistic gradient descent, optimistic Adam, Fromage, Adadelta.
"""

from __future__ import annotations

__all__: list[str] = []

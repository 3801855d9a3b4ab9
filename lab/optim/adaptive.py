"""Further adaptive methods: Adan, LAMB, LARS, NovoGrad, ADOPT, AdEMAMix, Prodigy.
"""

from __future__ import annotations

__all__: list[str] = []

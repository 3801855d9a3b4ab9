"""Adam's variants: NAdam, NAdamW, AMSGrad, Adamax, AdamaxW, AdaBelief, RAdam, Yogi.
"""

from __future__ import annotations

__all__: list[str] = []

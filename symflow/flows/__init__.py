"""Flow builders (flowjax's and zuko's names): layers from `symflow.bijectors`, assembled.

Layers hold no learning; these functions build them into a `TransformedDistribution` over
a standard normal base, which `sf.fit` trains. One file per family.
"""

from symflow.flows.autoregressive import masked_autoregressive_flow
from symflow.flows.coupling import coupling_flow

__all__ = ["coupling_flow", "masked_autoregressive_flow"]

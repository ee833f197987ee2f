"""Growing the claims: a StatefulSet's claim templates are immutable, the claims are not."""

from __future__ import annotations

from vectorizer_operator import naming, quantity
from vectorizer_operator.reconcile.actions import ResizeClaim
from vectorizer_operator.reconcile.observe import Observation


def plan_resizes(obs: Observation) -> list[ResizeClaim]:
    """Bound claims of current instances smaller than spec.storage.size (never shrunk).

    Only bound claims can be resized; the others get their size when provisioned
    (from the StatefulSet's template) and are grown on a later pass.
    """
    size = obs.cluster.spec.storage.size
    want = quantity.parse(size)
    ours = {naming.pvc(obs.cluster.name, i.ordinal) for i in obs.members}
    actions = []
    for claim in obs.claims:
        if claim.name not in ours or claim.requested is None or not claim.bound:
            continue
        try:
            has = quantity.parse(claim.requested)
        except ValueError:
            continue
        if has < want:
            actions.append(ResizeClaim(claim.name, size))
    return actions

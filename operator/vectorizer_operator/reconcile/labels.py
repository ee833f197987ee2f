"""Pod labels from what each node reports: the -rw and -ro Services select on them.

- A node's reported role becomes its ``vectorizer.io/role`` label, except that only
  the chosen primary may carry ``primary`` (another node reporting primary is about
  to be fenced, so it is labelled ``fenced`` and leaves the -rw Service at once).
- A node that does not answer keeps its label (the Service drops it anyway when the
  pod is not Ready), unless that label is ``primary`` and it is not the chosen
  primary: then the label is removed.
- Every pod also gets ``vectorizer.io/instance=<pod name>``, and keeps the labels of
  the pod template (the StatefulSet's selector among them: a pod that lost its
  ``vectorizer.io/cluster`` label is released by the StatefulSet and left out of the
  Services until it is restored).
"""

from __future__ import annotations

from vectorizer_operator import naming
from vectorizer_operator.reconcile.actions import SetPodLabels
from vectorizer_operator.reconcile.observe import Instance, Observation


def desired_role(inst: Instance, primary: str | None) -> str | None:
    """The role label ``inst`` should carry; its current value to leave it unchanged."""
    current = inst.pod.labels.get(naming.LABEL_ROLE) if inst.pod else None
    if inst.node is None:
        if current == naming.ROLE_PRIMARY and inst.name != primary:
            return None
        return current
    if inst.node.role == naming.ROLE_PRIMARY and inst.name != primary:
        return naming.ROLE_FENCED
    return inst.node.role


def plan_labels(obs: Observation, primary: str | None) -> list[SetPodLabels]:
    actions: list[SetPodLabels] = []
    for inst in obs.instances:
        pod = inst.pod
        if pod is None or pod.terminating:
            continue
        want: dict[str, str | None] = {
            # The StatefulSet's selector among them: a pod that lost it is released.
            **naming.common_labels(obs.cluster.name),
            naming.LABEL_POD_INSTANCE: inst.name,
            naming.LABEL_ROLE: desired_role(inst, primary),
        }
        changes = {k: v for k, v in want.items() if pod.labels.get(k) != v}
        if changes:
            actions.append(SetPodLabels(pod.name, changes))
    return actions

"""One reconcile of one VectorizerCluster: observe, decide, act, report.

Level-based and idempotent: every pass starts from the API and the nodes, never from
what the previous pass believed, so a restarted operator (or a second one taking
over) simply continues. The steps, each short:

1. read the resource (gone or being deleted: nothing to do, the garbage collector
   removes the children; an invalid spec: report it, change nothing);
2. observe the StatefulSet, pods, claims and every node's replication status;
3. decide (pure functions): who is primary, how many pods, which pod rolls next;
4. apply the children (server-side apply restores deleted or edited ones; changed
   ones are dry-run first, so a spec the API server refuses changes nothing and is
   reported like an invalid one), then act on the nodes, labels, claims and pods;
5. write the status.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from vectorizer import errors as dataplane_errors
from vectorizer_operator import naming, pki
from vectorizer_operator.builders import BuildOptions, ChildRef, absent_children, desired_children
from vectorizer_operator.builders.common import content_hash
from vectorizer_operator.builders.security import admin_key_selector, tls_secret_name
from vectorizer_operator.builders.statefulset import preserve_immutable
from vectorizer_operator.dataplane_client import Access, DataPlane, DataPlaneError
from vectorizer_operator.model import Cluster, ClusterStatus, SpecError, cluster_stub, parse_cluster
from vectorizer_operator.reconcile import status as status_mod
from vectorizer_operator.reconcile.actions import (
    Action,
    DeletePod,
    Fence,
    Follow,
    Promote,
    RecordTargetPrimary,
    ResizeClaim,
    SetPodLabels,
    describe,
)
from vectorizer_operator.reconcile.discovery import Discovery
from vectorizer_operator.reconcile.monitoring import (
    REASON_ABSENT,
    REASON_FAILED,
    MonitoringCondition,
    MonitoringDiscovery,
    plan_monitoring,
)
from vectorizer_operator.reconcile.observe import (
    ClaimView,
    Instance,
    Observation,
    PodView,
    StatefulSetView,
    ordinals,
    pod_views,
)
from vectorizer_operator.reconcile.plan import decide
from vectorizer_operator.reconcile.ports import Json, Kube, KubeApiError
from vectorizer_operator.reconcile.security import (
    SecretsSeen,
    plan_security,
    secret_value,
    secrets_to_read,
    valid_key,
)
from vectorizer_operator.schema import json_name

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a node answers (401) to a missing or wrong admin key.
UNAUTHENTICATED = dataplane_errors.Unauthenticated.code
# Previous admin keys kept at most (a key rotated several times within the grace).
_MAX_PREVIOUS_KEYS = 4


@dataclass(frozen=True)
class ReconcileSettings:
    build: BuildOptions
    pod_address: str = "ip"  # how the operator reaches a node: its pod IP, or its DNS name
    max_catchup_lag: int = 100
    switchover_timeout_s: float = 30.0
    switchover_retry_s: float = 300.0
    resync_s: float = 10.0
    busy_resync_s: float = 2.0
    # How often to ask the API server again whether it serves monitoring.coreos.com/v1.
    discovery_recheck_s: float = 300.0
    # How long a replaced admin key is still tried on a node that refuses the new one:
    # a node re-reads its key file once the kubelet rewrites the mounted Secret, which
    # takes up to its sync period plus its Secret cache's TTL (a minute each by default).
    previous_key_grace_s: float = 300.0


@dataclass(frozen=True)
class Result:
    """When to look again (None: the resource is gone)."""

    requeue_after: float | None
    phase: str | None = None


@dataclass
class _Memory:
    """Per-cluster facts that are fine to lose on restart (timers of a switchover)."""

    switchover: tuple[str, float] | None = None  # (target, since)
    abandoned_at: float | None = None
    last_spec_error: str | None = None
    # The last spec acted upon: while a newer one cannot be, pods are labelled from it.
    acted_on: Cluster | None = None
    resize_warned: set[tuple[str, str]] = field(default_factory=set)
    monitoring_reported: str | None = None  # the MonitoringReady reason last sent as an event
    security_reported: tuple[str, ...] = ()  # security problems last sent as events
    # Content hash of each child's manifest the API server last accepted, by
    # (apiVersion, kind, name): a manifest seen here needs no dry run before it is
    # applied again (see ``_refusal``).
    accepted: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # How this pass reaches the nodes: the admin key, and a context trusting the cluster
    # CA bundle (rebuilt only when the bundle changes).
    api_key: str | None = None
    trust: tuple[bytes, ssl.SSLContext] | None = None
    # Admin keys the spec's Secret held before ``api_key``, with when each was replaced.
    # Until the kubelet rewrites the mounted file, a node accepts only the key it has:
    # one that refuses the new key (401) is called with these, newest first. Dropped
    # once every running node accepts the new key, or after ``previous_key_grace_s``.
    previous_keys: dict[str, float] = field(default_factory=dict)
    on_previous_key: set[str] = field(default_factory=set)  # pods logged as needing one
    # How this pass reaches each pod, by pod name: a pod still on an older revision
    # (TLS or auth turned off, another Secret) is called with what that revision was
    # given, not with the spec's (see ``_pod_access``).
    access: dict[str, Access] = field(default_factory=dict)
    contexts: dict[bytes, ssl.SSLContext] = field(default_factory=dict)


@dataclass
class _Pass:
    """What one pass did, for the requeue decision and the status."""

    acted: bool = False
    errors: list[str] = field(default_factory=list)


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_url(pod: PodView, cluster: Cluster, settings: ReconcileSettings) -> str:
    domain = settings.build.cluster_domain
    if settings.pod_address == "dns" or not pod.ip:
        return naming.advertise_url(cluster.name, cluster.namespace, pod.name, domain, tls=pod.tls)
    host = f"[{pod.ip}]" if ":" in pod.ip else pod.ip
    return f"{'https' if pod.tls else 'http'}://{host}:{naming.HTTP_PORT}"


def node_access(
    pod: PodView, cluster: Cluster, settings: ReconcileSettings, memory: _Memory
) -> Access:
    """The admin key, and for an HTTPS pod the CA bundle and the name its certificate has.

    What ``_pod_access`` worked out for this pod in this pass; the spec's otherwise.
    """
    known = memory.access.get(pod.name)
    if known is not None:
        return known
    if not pod.tls or memory.trust is None:
        return Access(api_key=memory.api_key)
    fqdn = naming.pod_fqdn(cluster.name, cluster.namespace, pod.name, settings.build.cluster_domain)
    return Access(api_key=memory.api_key, ssl=memory.trust[1], server_hostname=fqdn)


def ours(cluster: Cluster, pod: Json, statefulset_uid: str | None) -> bool:
    """A pod of the cluster's StatefulSet, whether or not it has its selector label.

    A controlled pod must be controlled by the StatefulSet that exists now
    (``statefulset_uid``; None when there is none), not merely by one of its name: the
    pods of a deleted cluster keep their labels and owner reference while they
    terminate, and the cluster created again under the same name must not count them.
    """
    meta = pod.get("metadata") or {}
    controllers = [o for o in meta.get("ownerReferences") or () if o.get("controller")]
    if controllers:
        sts = naming.statefulset(cluster.name)
        return statefulset_uid is not None and all(
            o.get("kind") == "StatefulSet"
            and o.get("name") == sts
            and o.get("uid") == statefulset_uid
            for o in controllers
        )
    labels = meta.get("labels") or {}
    return (
        labels.get(naming.LABEL_POD_INSTANCE) == meta.get("name")
        or labels.get(naming.LABEL_INSTANCE) == cluster.name
    )


def spec_tls_secret(cluster: Cluster) -> str | None:
    return tls_secret_name(cluster) if cluster.spec.tls.enabled else None


def spec_admin_key(cluster: Cluster) -> tuple[str, str] | None:
    if not cluster.spec.auth.enabled:
        return None
    selector = admin_key_selector(cluster)
    return selector.name, selector.key


def foreign_material(cluster: Cluster, pods: Sequence[PodView]) -> set[str]:
    """Secrets pods on another revision were given and the spec no longer names."""
    tls, key = spec_tls_secret(cluster), spec_admin_key(cluster)
    out = {p.tls_secret for p in pods if p.tls and p.tls_secret and p.tls_secret != tls}
    out |= {p.admin_key[0] for p in pods if p.admin_key is not None and p.admin_key != key}
    return out


def trust_context(bundle: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=bundle.decode())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _child_key(manifest: Json) -> tuple[str, str, str]:
    return manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"]


def status_patch(status: ClusterStatus) -> Json:
    """Every status field, with None for absent ones so the merge patch removes them."""
    body = status.to_json()
    for f in ClusterStatus.__dataclass_fields__.values():
        body.setdefault(json_name(f), None)
    return body


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        dataplane: DataPlane,
        settings: ReconcileSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], str] = _now_iso,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.dataplane = dataplane
        self.settings = settings
        self.clock = clock
        self.now = now
        self.utcnow = utcnow
        self._memory: dict[tuple[str, str], _Memory] = {}
        self.discovery = MonitoringDiscovery(
            kube, recheck_s=settings.discovery_recheck_s, clock=lambda: self.clock()
        )
        self.cert_manager = Discovery(
            kube,
            naming.CERT_MANAGER_API_VERSION,
            ("Certificate",),
            recheck_s=settings.discovery_recheck_s,
            clock=lambda: self.clock(),
        )

    def forget(self, namespace: str, name: str) -> None:
        self._memory.pop((namespace, name), None)

    # ---- the pass --------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str) -> Result:
        body = await self.kube.get(naming.API_VERSION, naming.KIND, namespace, name)
        if body is None:
            self.forget(namespace, name)
            return Result(None)
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            return Result(None)  # the garbage collector deletes the children
        memory = self._memory.setdefault((namespace, name), _Memory())
        try:
            cluster = parse_cluster(body)
        except SpecError as err:
            if memory.acted_on is not None:  # (its spec, the status as it is now)
                stub = cluster_stub(body)
                last = replace(memory.acted_on, generation=stub.generation, status=stub.status)
                await self._keep_roles(await self._observe(last, memory), memory)
            return await self._invalid(body, str(err), memory)
        problems = await self._apply_security(cluster, memory)
        obs = await self._observe(cluster, memory)
        return await self._converge(obs, memory, problems)

    async def _invalid(self, body: Json, message: str, memory: _Memory) -> Result:
        return await self._failed(cluster_stub(body), message, memory)

    async def _keep_roles(self, obs: Observation, memory: _Memory) -> None:
        """While the spec cannot be acted upon, nothing is changed but the pods' labels,
        which follow what the nodes report (the Services select on them): a primary's pod
        recreated meanwhile came back from the template without its role label, and the
        -rw Service had no endpoint, every write failing, until the spec was fixed."""
        s = self.settings
        plan = decide(obs, max_lag=s.max_catchup_lag, switchover_timeout_s=s.switchover_timeout_s)
        await self._run(obs, plan.labels, _Pass(), memory)

    async def _failed(self, cluster: Cluster, message: str, memory: _Memory) -> Result:
        """The spec cannot be acted upon: say so (one event per message), change nothing."""
        if memory.last_spec_error != message:
            log.warning("%s/%s: invalid spec: %s", cluster.namespace, cluster.name, message)
            await self._event(cluster, "Warning", "InvalidSpec", message)
            memory.last_spec_error = message
        status = status_mod.failed_status(cluster, message, now=self.now())
        if not await self._write_status(cluster, status):
            return Result(None)
        return Result(self.settings.resync_s, status_mod.FAILED)

    # ---- security material -------------------------------------------------------------

    async def _apply_security(self, cluster: Cluster, memory: _Memory) -> list[str]:
        """Issue or renew certificates and keys; returns the problems (not raised: the
        cluster keeps being managed with what exists)."""
        ns = cluster.namespace
        wanted = secrets_to_read(cluster)
        problems: list[str] = []
        try:
            found = await asyncio.gather(
                *(self.kube.get("v1", "Secret", ns, name) for name in wanted.values())
            )
            served = await self.cert_manager.available()
            plan = plan_security(
                cluster,
                SecretsSeen(**dict(zip(wanted, found, strict=True))),
                self.settings.build,
                now=self.utcnow(),
                cert_manager_served=served,
            )
            problems += plan.problems
            for manifest in plan.apply:
                await self.kube.apply(manifest)
            for ref in plan.remove:
                await self._delete_if_ours(cluster, ref)
        except KubeApiError as err:
            message = f"cannot read or write the cluster's Secrets: {err}"
            log.error("%s/%s: %s", ns, cluster.name, message)
            return [message]
        for note in plan.issued:
            log.info("%s/%s: %s", ns, cluster.name, note)
            await self._event(cluster, "Normal", "SecretIssued", note)
        reported = tuple(problems)
        if reported and reported != memory.security_reported:
            for problem in problems:
                log.warning("%s/%s: %s", ns, cluster.name, problem)
                await self._event(cluster, "Warning", "SecurityMaterial", problem)
        memory.security_reported = reported
        self._rotate_admin_key(cluster, memory, plan.admin_key)
        if plan.trust is None:
            memory.trust = None
        elif memory.trust is None or memory.trust[0] != plan.trust:
            try:
                memory.trust = (plan.trust, trust_context(plan.trust))
            except (ssl.SSLError, ValueError) as err:  # parses as PEM, yet OpenSSL refuses it
                memory.trust = None
                problems.append(f"the cluster's CA bundle cannot be used: {err}")
        return problems

    def _rotate_admin_key(self, cluster: Cluster, memory: _Memory, key: str | None) -> None:
        """Make ``key`` the one sent first; the one it replaces is kept as a fallback.

        Kept also when the Secret no longer holds a valid key (None): a node keeps its
        last good key then, too (SECURITY.md). Keys are never logged.
        """
        now = self.clock()
        old = memory.api_key
        if old is not None and old != key:
            memory.previous_keys[old] = now
            log.info(
                "%s/%s: the admin key changed; the previous one is still tried on nodes "
                "that refuse the new one (for at most %gs)",
                cluster.namespace,
                cluster.name,
                self.settings.previous_key_grace_s,
            )
        if key is not None:
            memory.previous_keys.pop(key, None)  # rotated back to a key seen before
        grace = self.settings.previous_key_grace_s
        kept = sorted(
            ((t, k) for k, t in memory.previous_keys.items() if now - t <= grace), reverse=True
        )[:_MAX_PREVIOUS_KEYS]
        memory.previous_keys = {k: t for t, k in kept}
        if not memory.previous_keys:
            memory.on_previous_key.clear()
        memory.api_key = key

    def _fallback_keys(self, memory: _Memory, tried: str | None) -> list[str]:
        """Other admin keys a node that refused ``tried`` may still require: the spec's
        current one, then the previous ones, newest first."""
        by_age = sorted(memory.previous_keys.items(), key=lambda kv: kv[1], reverse=True)
        keys = [memory.api_key, *(k for k, _ in by_age)]
        out: list[str] = []
        for key in keys:
            if key is not None and key != tried and key not in out:
                out.append(key)
        return out

    async def _call_node(
        self,
        cluster: Cluster,
        pod: PodView,
        memory: _Memory,
        call: Callable[[Access], Awaitable[T]],
    ) -> T:
        """``call`` with the pod's access; refused as unauthenticated, again with each
        other admin key it may still require (a rotation the kubelet has not brought to
        the pod yet). The key that worked is used for the pod for the rest of the pass."""
        access = node_access(pod, cluster, self.settings, memory)
        try:
            return await call(access)
        except DataPlaneError as err:
            if err.code != UNAUTHENTICATED or not memory.previous_keys:
                raise
            refused = err
        for key in self._fallback_keys(memory, access.api_key):
            other = replace(access, api_key=key)
            try:
                result = await call(other)
            except DataPlaneError as err:
                if err.code != UNAUTHENTICATED:
                    raise
                continue
            memory.access[pod.name] = other
            previous = key in memory.previous_keys
            if previous and pod.name not in memory.on_previous_key:
                log.info(
                    "%s/%s: %s still requires the previous admin key (its mounted Secret "
                    "is not refreshed yet)",
                    cluster.namespace,
                    cluster.name,
                    pod.name,
                )
            if previous:
                memory.on_previous_key.add(pod.name)
            return result
        raise refused

    def _retire_previous_keys(
        self, cluster: Cluster, memory: _Memory, instances: Sequence[Instance]
    ) -> None:
        """Stop trying the previous admin keys once every running node answered without
        one (a node that does not answer may still hold an old key: they are kept)."""
        if not memory.previous_keys:
            return
        running = [i for i in instances if i.pod is not None and i.pod.running]
        for inst in running:
            access = memory.access.get(inst.name)
            if inst.node is None or (access is not None and access.api_key in memory.previous_keys):
                return
            memory.on_previous_key.discard(inst.name)
        log.info(
            "%s/%s: every node accepts the current admin key; the previous one is no longer used",
            cluster.namespace,
            cluster.name,
        )
        memory.previous_keys.clear()
        memory.on_previous_key.clear()

    # ---- observe ---------------------------------------------------------------------

    async def _observe(self, cluster: Cluster, memory: _Memory) -> Observation:
        ns, selector = cluster.namespace, naming.label_selector(cluster.name)
        sts_raw, pods_raw, claims_raw = await asyncio.gather(
            self.kube.get("apps/v1", "StatefulSet", ns, naming.statefulset(cluster.name)),
            self.kube.list("v1", "Pod", ns, selector),
            self.kube.list("v1", "PersistentVolumeClaim", ns, selector),
        )
        sts = StatefulSetView.from_json(sts_raw)
        owner = sts.uid if sts is not None else None
        listed = [p for p in pods_raw if ours(cluster, p, owner)]
        pods = pod_views(cluster, listed + await self._unlabelled_pods(cluster, sts, pods_raw))
        memory.access = await self._pod_access(cluster, pods, memory)
        by_ordinal = {p.ordinal: p for p in pods}
        instances = await asyncio.gather(
            *(self._instance(cluster, n, by_ordinal.get(n)) for n in ordinals(cluster, sts, pods))
        )
        self._retire_previous_keys(cluster, memory, instances)
        status = cluster.status
        now = self.clock()
        switching = status.target_primary not in (None, status.current_primary)
        if switching and status.current_primary is not None:
            if memory.switchover is None or memory.switchover[0] != status.target_primary:
                memory.switchover = (str(status.target_primary), now)
        else:
            memory.switchover = None
        elapsed = now - memory.switchover[1] if memory.switchover else 0.0
        allowed = (
            memory.abandoned_at is None
            or now - memory.abandoned_at > self.settings.switchover_retry_s
        )
        return Observation(
            cluster=cluster,
            statefulset=sts,
            instances=tuple(instances),
            claims=tuple(ClaimView.from_json(c) for c in claims_raw),
            cluster_domain=self.settings.build.cluster_domain,
            switchover_elapsed_s=elapsed,
            switchover_allowed=allowed,
        )

    async def _unlabelled_pods(
        self, cluster: Cluster, sts: StatefulSetView | None, listed: Sequence[Json]
    ) -> list[Json]:
        """Pods of the StatefulSet's names that the label query missed.

        Someone removed the cluster label: the StatefulSet controller released the pod
        (it no longer matches the selector) but cannot create another of that name, so
        the pod runs unseen; found by name, its labels are restored (``plan_labels``) and
        the controller adopts it again.
        """
        seen = {str((p.get("metadata") or {}).get("name")) for p in listed}
        upto = max(cluster.spec.instances, sts.replicas if sts else 0)
        missing = {naming.pod(cluster.name, n) for n in range(upto)} - seen
        if not missing:
            return []
        # Only pods without the label at all (the operator may list, not get, pods).
        unlabelled = await self.kube.list(
            "v1", "Pod", cluster.namespace, f"!{naming.LABEL_CLUSTER}"
        )
        return [
            p
            for p in unlabelled
            if (p.get("metadata") or {}).get("name") in missing
            and ours(cluster, p, sts.uid if sts is not None else None)
        ]

    async def _pod_access(
        self, cluster: Cluster, pods: Sequence[PodView], memory: _Memory
    ) -> dict[str, Access]:
        """How to reach each pod: with the CA and admin key its own revision was given.

        While TLS or auth is turned off, or moved to another Secret, the pods not yet
        replaced still serve HTTPS with the old certificate or require the old key; the
        spec's material (none, or the new Secret's) would not reach them, and a pod the
        operator cannot reach looks like one that does not serve.
        """
        names = sorted(foreign_material(cluster, pods))
        found: dict[str, Json | None] = {}
        if names:
            ns = cluster.namespace
            try:
                read = await asyncio.gather(
                    *(self.kube.get("v1", "Secret", ns, name) for name in names)
                )
            except KubeApiError as err:
                log.warning("%s/%s: cannot read the pods' Secrets: %s", ns, cluster.name, err)
                read = [None] * len(names)
            found = dict(zip(names, read, strict=True))
        tls, key = spec_tls_secret(cluster), spec_admin_key(cluster)
        spec_bundle = memory.trust[0] if memory.trust is not None else None
        used: dict[bytes, ssl.SSLContext] = {}
        out: dict[str, Access] = {}
        for pod in pods:
            api_key = memory.api_key
            if pod.admin_key is not None and pod.admin_key != key:
                secret, item = pod.admin_key
                api_key = valid_key(secret_value(found.get(secret), item)) or api_key
            if not pod.tls:
                out[pod.name] = Access(api_key=api_key)
                continue
            bundle = spec_bundle
            if pod.tls_secret is not None and pod.tls_secret != tls:
                own = secret_value(found.get(pod.tls_secret), naming.CA_CERT_KEY)
                if own and pki.split_bundle(own):
                    # Trust both: the pod may reload a certificate from either CA.
                    bundle = own + (spec_bundle or b"")
            if bundle is None:
                out[pod.name] = Access(api_key=api_key)
                continue
            context = used.get(bundle) or memory.contexts.get(bundle)
            if context is None and memory.trust is not None and memory.trust[0] == bundle:
                context = memory.trust[1]
            if context is None:
                try:
                    context = trust_context(bundle)
                except (ssl.SSLError, ValueError):
                    out[pod.name] = Access(api_key=api_key)
                    continue
            used[bundle] = context
            fqdn = naming.pod_fqdn(
                cluster.name, cluster.namespace, pod.name, self.settings.build.cluster_domain
            )
            out[pod.name] = Access(api_key=api_key, ssl=context, server_hostname=fqdn)
        memory.contexts = used
        return out

    async def _instance(self, cluster: Cluster, ordinal: int, pod: PodView | None) -> Instance:
        name = naming.pod(cluster.name, ordinal)
        if pod is None or not pod.running:
            return Instance(name, ordinal, pod)
        memory = self._memory.setdefault((cluster.namespace, cluster.name), _Memory())
        url = node_url(pod, cluster, self.settings)
        try:
            node = await self._call_node(
                cluster, pod, memory, lambda access: self.dataplane.status(url, access)
            )
        except DataPlaneError as err:
            return Instance(name, ordinal, pod, error=str(err))
        return Instance(name, ordinal, pod, node)

    # ---- decide and act --------------------------------------------------------------

    async def _converge(
        self, obs: Observation, memory: _Memory, problems: Sequence[str] = ()
    ) -> Result:
        s = self.settings
        cluster = obs.cluster
        plan = decide(obs, max_lag=s.max_catchup_lag, switchover_timeout_s=s.switchover_timeout_s)
        done = _Pass(errors=list(problems))
        children = await self._desired_children(cluster, plan.scale.replicas)
        applied: Json | None = None
        try:
            refusal = await self._refusal(cluster, children, memory)
        except KubeApiError as err:
            # Whether the API server would take the change is unknown: apply none of
            # it this pass rather than risk applying half of it.
            message = f"cannot check the changed children before applying them: {err}"
            log.error("%s/%s: %s", cluster.namespace, cluster.name, message)
            done.errors.append(message)
        else:
            if refusal is not None:
                await self._keep_roles(obs, memory)
                return await self._failed(cluster, refusal, memory)
            memory.last_spec_error = None
            memory.acted_on = cluster
            applied = await self._apply_children(cluster, children, done, memory)
        # A new StatefulSet generation without a scale: the pod template changed, and the
        # pods are now outdated, though the observation (taken before) cannot show it.
        new_template = (
            obs.statefulset is not None
            and applied is not None
            and int(applied.get("metadata", {}).get("generation") or 0) > obs.statefulset.generation
            and plan.scale.replicas == obs.statefulset.replicas
        )
        done.acted = done.acted or new_template
        monitoring = await self._apply_monitoring(cluster, memory)
        generation = cluster.generation if not done.errors else cluster.status.observed_generation
        await self._run(obs, plan.replication.actions, done, memory)
        if plan.replication.aborted_switchover:
            memory.abandoned_at = self.clock()
            await self._event(cluster, "Warning", "SwitchoverAbandoned", plan.replication.reason)
        if plan.start_switchover is not None:
            target = plan.start_switchover.instance
            await self._event(cluster, "Normal", "Switchover", f"moving the primary to {target}")
            await self._run(obs, [plan.start_switchover], done, memory)
        await self._run(obs, plan.labels, done, memory)
        await self._resize(obs, plan.resizes, memory)
        if plan.delete is not None:
            await self._run(obs, [plan.delete], done, memory)
        phase = status_mod.choose_phase(obs, plan.topology, plan.scale, plan.rollout)
        if new_template and phase.name in (status_mod.HEALTHY, status_mod.DEGRADED):
            # (what made it Degraded is not hidden by the precedence: see Phase.fault)
            fault = phase.reason if phase.name == status_mod.DEGRADED else None
            rolling = "rolling out a new pod template" + (f"; {fault}" if fault else "")
            phase = status_mod.Phase(status_mod.UPGRADING, rolling, fault=fault)
        if done.errors and phase.name == status_mod.HEALTHY:
            phase = status_mod.Phase(status_mod.DEGRADED, "; ".join(done.errors))
        status = status_mod.build_status(
            obs,
            plan.topology,
            phase,
            now=self.now(),
            observed_generation=generation,
            monitoring=monitoring,
        )
        if not await self._write_status(cluster, status):
            return Result(None)  # deleted while the pass ran: the garbage collector has it
        busy = done.acted or done.errors or phase.name != status_mod.HEALTHY
        return Result(s.busy_resync_s if busy else s.resync_s, phase.name)

    async def _desired_children(self, cluster: Cluster, replicas: int) -> list[Json]:
        """Every child as it will be applied (the StatefulSet keeps its immutable fields)."""
        out = []
        for manifest in desired_children(cluster, self.settings.build, replicas=replicas):
            if manifest["kind"] == "StatefulSet":
                live = await self.kube.get(
                    "apps/v1", "StatefulSet", cluster.namespace, manifest["metadata"]["name"]
                )
                manifest = preserve_immutable(manifest, live)
            out.append(manifest)
        return out

    async def _refusal(
        self, cluster: Cluster, children: Sequence[Json], memory: _Memory
    ) -> str | None:
        """Why the API server would refuse a child, asked before any child is changed.

        The CRD and ``parse_cluster`` cannot check everything the API server checks (a
        request above its limit, a toleration ``Exists`` with a value, a bad topology
        key); applied in order, the ConfigMap would change and then the StatefulSet be
        refused, and a pod restarting meanwhile would read the new settings with the old
        template. So each child whose manifest the API server has not accepted before
        is applied first as a dry run (nothing stored); in the steady state every
        manifest was accepted, and nothing extra is sent. Other errors are raised.
        """
        for manifest in children:
            if memory.accepted.get(_child_key(manifest)) == content_hash(manifest):
                continue
            try:
                await self.kube.apply(manifest, dry_run=True)
            except KubeApiError as err:
                if err.status != 422:  # 422 Invalid: the API server refuses the content
                    raise
                what = f"{manifest['kind']} {manifest['metadata']['name']}"
                return f"the API server refuses {what}: {err.message}"
        return None

    async def _apply_children(
        self, cluster: Cluster, children: Sequence[Json], done: _Pass, memory: _Memory
    ) -> Json | None:
        """Apply every child; returns the StatefulSet as applied (None if that failed)."""
        sts_applied: Json | None = None
        for manifest in children:
            try:
                result = await self.kube.apply(manifest)
                memory.accepted[_child_key(manifest)] = content_hash(manifest)
                if manifest["kind"] == "StatefulSet":
                    sts_applied = result
                if manifest["kind"] == "ConfigMap":
                    await self._drop_foreign_data(manifest, result)
            except KubeApiError as err:
                what = f"{manifest['kind']} {manifest['metadata']['name']}"
                log.error(
                    "%s/%s: applying %s failed: %s", cluster.namespace, cluster.name, what, err
                )
                done.errors.append(f"cannot apply {what}: {err}")
        for ref in absent_children(cluster):
            done.acted = await self._delete_if_ours(cluster, ref) or done.acted
        return sts_applied

    async def _drop_foreign_data(self, manifest: Json, live: Json) -> None:
        """spec.config is the ConfigMap's one source of truth.

        Server-side apply leaves keys another field manager added (``kubectl edit``), and
        pods would read them as settings on their next restart: remove them.
        """
        wanted = manifest.get("data") or {}
        foreign = sorted(set(live.get("data") or {}) - set(wanted))
        if not foreign:
            return
        meta = manifest["metadata"]
        log.info(
            "%s/%s: removing keys not from spec.config: %s",
            meta["namespace"],
            meta["name"],
            ", ".join(foreign),
        )
        patch = {"data": dict.fromkeys(foreign)}
        await self.kube.patch("v1", "ConfigMap", meta["namespace"], meta["name"], patch)

    async def _delete_if_ours(self, cluster: Cluster, ref: ChildRef) -> bool:
        live = await self.kube.get(ref.api_version, ref.kind, cluster.namespace, ref.name)
        owners = (live or {}).get("metadata", {}).get("ownerReferences") or []
        if live and any(o.get("uid") == cluster.uid for o in owners):
            await self.kube.delete(ref.api_version, ref.kind, cluster.namespace, ref.name)
            return True
        return False

    async def _apply_monitoring(
        self, cluster: Cluster, memory: _Memory
    ) -> MonitoringCondition | None:
        """Apply the PodMonitor and PrometheusRule (when served); never fails the pass."""
        plan = plan_monitoring(cluster, await self.discovery.available())
        condition = plan.condition
        try:
            for manifest in plan.apply:
                await self.kube.apply(manifest)
            for ref in plan.remove:
                await self._delete_if_ours(cluster, ref)
        except KubeApiError as err:
            if err.status == 404:  # the CRDs went away since the last discovery
                self.discovery.invalidate()
                plan = plan_monitoring(cluster, await self.discovery.available())
                condition = plan.condition
            if condition is None or condition.reason != REASON_ABSENT:
                message = f"cannot apply the monitoring resources: {err}"
                log.warning("%s/%s: %s", cluster.namespace, cluster.name, message)
                condition = MonitoringCondition(False, REASON_FAILED, message)
        reason = condition.reason if condition is not None and not condition.ready else None
        if reason is not None and memory.monitoring_reported != reason:
            assert condition is not None
            await self._event(cluster, "Warning", reason, condition.message)
        memory.monitoring_reported = reason
        return condition

    async def _resize(
        self, obs: Observation, resizes: Sequence[ResizeClaim], memory: _Memory
    ) -> None:
        """Grow claims; a refusal (e.g. a class without expansion) is a warning, not an outage."""
        for action in resizes:
            try:
                await self._act(obs, action, memory)
            except KubeApiError as err:
                key = (action.claim, action.size)
                if key not in memory.resize_warned:
                    memory.resize_warned.add(key)
                    message = f"cannot {describe(action)}: {err}"
                    log.warning("%s/%s: %s", obs.cluster.namespace, obs.cluster.name, message)
                    await self._event(obs.cluster, "Warning", "ResizeFailed", message)

    async def _run(
        self,
        obs: Observation,
        actions: Sequence[Action],
        done: _Pass,
        memory: _Memory,
    ) -> None:
        for action in actions:
            try:
                await self._act(obs, action, memory)
                done.acted = True
            except (DataPlaneError, KubeApiError) as err:
                message = f"cannot {describe(action)}: {err}"
                log.warning("%s/%s: %s", obs.cluster.namespace, obs.cluster.name, message)
                done.errors.append(message)
                if isinstance(action, RecordTargetPrimary):
                    return  # never act on a decision that was not recorded

    async def _act(self, obs: Observation, action: Action, memory: _Memory) -> None:
        cluster = obs.cluster
        ns = cluster.namespace

        def pod_of(name: str) -> tuple[PodView, str]:
            inst = obs.instance(name)
            if inst is None or inst.pod is None:
                raise DataPlaneError(f"{name} has no pod")
            return inst.pod, node_url(inst.pod, cluster, self.settings)

        match action:
            case RecordTargetPrimary(instance=target):
                await self.kube.patch_status(
                    naming.API_VERSION, naming.KIND, ns, cluster.name, {"targetPrimary": target}
                )
            case Promote(instance=name, epoch=epoch):
                pod, where = pod_of(name)
                await self._call_node(
                    cluster, pod, memory, lambda a: self.dataplane.promote(where, epoch, a)
                )
                await self._event(
                    cluster, "Normal", "Promoted", f"{name} is primary at epoch {epoch}"
                )
            case Follow(instance=name, primary=primary, primary_url=primary_url, epoch=epoch):
                pod, where = pod_of(name)
                await self._call_node(
                    cluster,
                    pod,
                    memory,
                    lambda a: self.dataplane.follow(where, primary_url, epoch, a),
                )
                await self._event(cluster, "Normal", "Following", f"{name} follows {primary}")
            case Fence(instance=name, epoch=epoch):
                pod, where = pod_of(name)
                await self._call_node(
                    cluster, pod, memory, lambda a: self.dataplane.fence(where, epoch, a)
                )
                if memory.switchover is not None and name == cluster.status.current_primary:
                    memory.switchover = (memory.switchover[0], self.clock())  # catch-up clock
                await self._event(cluster, "Normal", "Fenced", f"{name} takes no more writes")
            case SetPodLabels(pod=pod, labels=labels):
                await self.kube.patch("v1", "Pod", ns, pod, {"metadata": {"labels": dict(labels)}})
            case ResizeClaim(claim=claim, size=size):
                patch = {"spec": {"resources": {"requests": {"storage": size}}}}
                await self.kube.patch("v1", "PersistentVolumeClaim", ns, claim, patch)
                await self._event(cluster, "Normal", "ResizingClaim", f"{claim} to {size}")
            case DeletePod(pod=pod, reason=reason):
                inst = obs.instance(pod)
                uid = inst.pod.uid if inst is not None and inst.pod is not None else None
                # The uid precondition: never delete a pod recreated since we looked.
                await self.kube.delete("v1", "Pod", ns, pod, uid=uid)
                await self._event(cluster, "Normal", "RollingUpdate", f"deleted {pod}: {reason}")

    # ---- report ----------------------------------------------------------------------

    async def _write_status(self, cluster: Cluster, status: ClusterStatus) -> bool:
        """False when the cluster was deleted meanwhile (nothing more to do)."""
        try:
            await self.kube.patch_status(
                naming.API_VERSION,
                naming.KIND,
                cluster.namespace,
                cluster.name,
                status_patch(status),
            )
        except KubeApiError as err:
            if err.status != 404:
                raise
            log.info("%s/%s: deleted during the pass", cluster.namespace, cluster.name)
            self.forget(cluster.namespace, cluster.name)
            return False
        return True

    async def _event(self, cluster: Cluster, type_: str, reason: str, message: str) -> None:
        ref = {
            "apiVersion": naming.API_VERSION,
            "kind": naming.KIND,
            "name": cluster.name,
            "namespace": cluster.namespace,
            "uid": cluster.uid,
        }
        try:
            await self.kube.emit_event(ref, type_, reason, message)
        except KubeApiError as err:  # events are best effort
            log.debug("event %s not recorded: %s", reason, err)

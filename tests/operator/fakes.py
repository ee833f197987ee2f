"""In-memory stand-ins: an API server, the data-plane nodes, and a tiny cluster simulation.

``Sim`` plays the parts the operator relies on but does not own: the StatefulSet
controller (creates pods from the template, labels them with the revision, removes
the highest ordinals when scaled down), the kubelet (pods Running and Ready with an
IP), the claims, and the replication streams (a replica following a live primary
catches up with it). The operator under test talks to it through the same ports it
uses in production (``reconcile.ports.Kube`` and ``dataplane_client.DataPlane``).

``FakeKube`` refuses, as the API server does (HTTP 422, worded as it words them), the
invalid StatefulSets the tests use: see ``statefulset_problems``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vectorizer_operator import naming, quantity
from vectorizer_operator.builders import BuildOptions
from vectorizer_operator.dataplane_client import PLAIN, Access, DataPlaneError, NodeStatus
from vectorizer_operator.kube import RESOURCES
from vectorizer_operator.pki import split_bundle
from vectorizer_operator.reconcile.cluster import Reconciler, ReconcileSettings, Result
from vectorizer_operator.reconcile.observe import serves_tls
from vectorizer_operator.reconcile.ports import KubeApiError

Json = dict[str, Any]
Key = tuple[str, str, str, str]

NS = "db"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        if term.startswith("!"):
            if term[1:] in labels:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k) != v:
                return False
        elif term not in labels:
            return False
    return True


# ---- the API server's validation, for the cases the tests use ------------------------------
# The wording is the API server's (k8s.io/kubernetes pkg/apis/core/validation), checked
# against kube-apiserver v1.36 with server-side dry runs. Only these cases are modelled:
# a StatefulSet the fake accepts may still be refused by a real API server.

_STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
_NAME_PART_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_PART = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
    "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_PREFIX_PART = (
    "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
    "'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def _invalid(path: str, value: object, detail: str) -> str:
    return f'{path}: Invalid value: "{value}": {detail}'


def _qualified_name(path: str, key: str) -> list[str]:
    prefix, slash, name = key.rpartition("/")
    out = []
    if slash and not _PREFIX_RE.match(prefix):
        out.append(_invalid(path, key, _PREFIX_PART))
    if not _NAME_PART_RE.match(name):
        out.append(_invalid(path, key, _NAME_PART))
    return out


def _standard(name: str) -> bool:
    return name in _STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-")


def _above_limit(name: str, request: str, limits: Json) -> bool:
    limit = limits.get(name)
    return limit is not None and quantity.parse(request) > quantity.parse(limit)


def _resource_problems(path: str, resources: Json) -> list[str]:
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    out = []
    for part, quantities in (("limits", limits), ("requests", requests)):
        for name, value in sorted(quantities.items()):
            where = f"{path}.{part}[{name}]"
            if not _standard(name) and "/" not in name:
                out.append(
                    _invalid(where, name, "must be a standard resource type or fully qualified")
                )
                out.append(_invalid(where, name, "must be a standard resource for containers"))
            if quantity.parse(value) < 0:
                out.append(_invalid(where, value, "must be greater than or equal to 0"))
            if part == "requests" and _above_limit(name, value, limits):
                detail = f"must be less than or equal to {name} limit of {limits[name]}"
                out.append(_invalid(f"{path}.requests", value, detail))
    return out


def _toleration_problems(path: str, tolerations: list[Json]) -> list[str]:
    out = []
    for n, toleration in enumerate(tolerations):
        where = f"{path}[{n}]"
        key, operator = toleration.get("key") or "", toleration.get("operator") or ""
        if key:
            out += _qualified_name(f"{where}.key", key)
        elif operator != "Exists":
            detail = (
                "operator must be Exists when `key` is empty, which means "
                '"match all values and all keys"'
            )
            out.append(_invalid(f"{where}.operator", operator, detail))
        if operator == "Exists" and toleration.get("value"):
            detail = "value must be empty when `operator` is 'Exists'"
            out.append(_invalid(f"{where}.operator", toleration["value"], detail))
    return out


def _anti_affinity_problems(path: str, anti: Json) -> list[str]:
    out = []
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    for n, term in enumerate(anti.get(required) or ()):
        out += _qualified_name(f"{path}.{required}[{n}].topologyKey", term.get("topologyKey", ""))
    preferred = "preferredDuringSchedulingIgnoredDuringExecution"
    for n, weighted in enumerate(anti.get(preferred) or ()):
        where = f"{path}.{preferred}[{n}].podAffinityTerm.topologyKey"
        out += _qualified_name(where, weighted["podAffinityTerm"].get("topologyKey", ""))
    return out


def statefulset_problems(manifest: Json) -> list[str]:
    """What the API server's validation of the pod template says about ``manifest``."""
    path = "spec.template.spec"
    pod = manifest["spec"]["template"]["spec"]
    out = []
    for n, container in enumerate(pod.get("containers") or ()):
        out += _resource_problems(
            f"{path}.containers[{n}].resources", container.get("resources") or {}
        )
    anti = (pod.get("affinity") or {}).get("podAntiAffinity") or {}
    out += _anti_affinity_problems(f"{path}.affinity.podAntiAffinity", anti)
    out += _toleration_problems(f"{path}.tolerations", pod.get("tolerations") or [])
    return out


def refusal(manifest: Json, problems: list[str]) -> KubeApiError:
    """422 Invalid, with the message the API server writes (several causes in brackets)."""
    listed = problems[0] if len(problems) == 1 else f"[{', '.join(problems)}]"
    group = manifest["apiVersion"].rpartition("/")[0]  # "apps"; "" for the core group
    kind = f"{manifest['kind']}.{group}" if group else manifest["kind"]
    what = f'{kind} "{manifest["metadata"]["name"]}"'
    return KubeApiError(422, f"{what} is invalid: {listed}", "Invalid")


class FakeKube:
    """Objects in a dict; server-side apply modelled as a merge that the manifest wins."""

    def __init__(self) -> None:
        self.objects: dict[Key, Json] = {}
        self.events: list[tuple[str, str, str]] = []
        self.calls: list[tuple[str, str, str]] = []
        self.fail: dict[tuple[str, str], KubeApiError] = {}
        # What discovery reports (the Prometheus Operator's CRDs are installed).
        self.served: set[tuple[str, str]] = {
            (naming.MONITORING_API_VERSION, "PodMonitor"),
            (naming.MONITORING_API_VERSION, "PrometheusRule"),
        }
        self._rv = 0
        self.applied_data: dict[Key, set[str]] = {}  # data keys the applier owns

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    @staticmethod
    def key_of(obj: Json) -> Key:
        m = obj["metadata"]
        return (obj["apiVersion"], obj["kind"], m.get("namespace", ""), m["name"])

    def _check(self, method: str, kind: str, api_version: str = "") -> None:
        # The real client can only address kinds it knows the plural of.
        assert not api_version or (api_version, kind) in RESOURCES, (api_version, kind)
        err = self.fail.get((method, kind))
        if err is not None:
            raise err
        if api_version == naming.MONITORING_API_VERSION and (api_version, kind) not in self.served:
            raise KubeApiError(404, f"the server could not find the requested resource ({kind})")

    def put(self, obj: Json) -> Json:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault(
            "uid", hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]
        )
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self._next_rv()
        self.objects[self.key_of(obj)] = obj
        return obj

    def find(self, api_version: str, kind: str, name: str, namespace: str = NS) -> Json | None:
        return self.objects.get((api_version, kind, namespace, name))

    def of_kind(self, kind: str) -> list[Json]:
        return [o for k, o in sorted(self.objects.items()) if k[1] == kind]

    # ---- reconcile.ports.Kube -------------------------------------------------------

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None:
        self.calls.append(("get", kind, name))
        self._check("get", kind, api_version)
        obj = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(obj) if obj else None

    async def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[Json]:
        self.calls.append(("list", kind, selector))
        self._check("list", kind)
        return [
            copy.deepcopy(o)
            for (av, k, ns, _), o in sorted(self.objects.items())
            if av == api_version
            and k == kind
            and ns == namespace
            and matches(o["metadata"].get("labels") or {}, selector)
        ]

    async def apply(self, manifest: Json, *, dry_run: bool = False) -> Json:
        """Server-side apply; ``dry_run`` validates the same and stores nothing."""
        method = "dry-run" if dry_run else "apply"
        self.calls.append((method, manifest["kind"], manifest["metadata"]["name"]))
        self._check(method, manifest["kind"], manifest["apiVersion"])
        if manifest["kind"] == "StatefulSet":
            problems = statefulset_problems(manifest)
            if problems:
                raise refusal(manifest, problems)
        key = self.key_of(manifest)
        live = self.objects.get(key)
        if live is None:
            if dry_run:
                return copy.deepcopy(manifest)
            self.applied_data[key] = set(manifest.get("data") or {})
            return copy.deepcopy(self.put(manifest))
        if manifest["kind"] == "StatefulSet" and live.get("spec", {}).get(
            "volumeClaimTemplates"
        ) != manifest["spec"].get("volumeClaimTemplates"):
            raise KubeApiError(
                422, "spec: Forbidden: updates to statefulset spec for fields other than ..."
            )
        merged = self._merged(key, live, manifest)
        if dry_run:
            return copy.deepcopy(merged)
        if "data" in manifest:
            self.applied_data[key] = set(manifest["data"])
        if merged != live:
            if merged.get("spec") != live.get("spec"):
                merged["metadata"]["generation"] = live["metadata"].get("generation", 1) + 1
            merged["metadata"]["resourceVersion"] = self._next_rv()
            self.objects[key] = merged
        return copy.deepcopy(self.objects[key])

    def _merged(self, key: Key, live: Json, manifest: Json) -> Json:
        """``live`` with ``manifest`` applied over it (not stored)."""
        merged = merge_patch(live, {k: v for k, v in manifest.items() if k != "status"})
        if "spec" in manifest:  # the applier owns the spec entirely here
            merged["spec"] = copy.deepcopy(manifest["spec"])
        if "data" in manifest:
            # Keys the applier set before and no longer sets are removed; keys another
            # manager added (kubectl edit) stay: server-side apply leaves what it does
            # not own.
            before = self.applied_data.get(key, set())
            foreign = {k: v for k, v in (live.get("data") or {}).items() if k not in before}
            merged["data"] = {**foreign, **copy.deepcopy(manifest["data"])}
        merged["metadata"]["labels"] = dict(manifest["metadata"].get("labels") or {})
        return merged

    async def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Json
    ) -> Json:
        self.calls.append(("patch", kind, name))
        self._check("patch", kind)
        key = (api_version, kind, namespace, name)
        if key not in self.objects:
            raise KubeApiError(404, f"{kind} {name} not found", "NotFound")
        self.objects[key] = merge_patch(self.objects[key], patch)
        self.objects[key]["metadata"]["resourceVersion"] = self._next_rv()
        return copy.deepcopy(self.objects[key])

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Json
    ) -> None:
        self.calls.append(("patch_status", kind, name))
        self._check("patch_status", kind)
        key = (api_version, kind, namespace, name)
        if key not in self.objects:
            raise KubeApiError(404, f"{kind} {name} not found", "NotFound")
        obj = self.objects[key]
        obj["status"] = merge_patch(obj.get("status") or {}, status)

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None
    ) -> None:
        self.calls.append(("delete", kind, name))
        self._check("delete", kind, api_version)
        key = (api_version, kind, namespace, name)
        obj = self.objects.get(key)
        if obj is None:
            return
        if uid is not None and obj["metadata"].get("uid") != uid:
            raise KubeApiError(409, "uid precondition failed", "Conflict")
        del self.objects[key]

    async def emit_event(self, involved: Json, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    async def serves(self, api_version: str, kind: str) -> bool:
        self.calls.append(("serves", kind, api_version))
        self._check("serves", kind)
        return (api_version, kind) in self.served

    # ---- leases ---------------------------------------------------------------------

    async def create(self, manifest: Json) -> Json:
        key = self.key_of(manifest)
        if key in self.objects:
            raise KubeApiError(409, "already exists", "AlreadyExists")
        return copy.deepcopy(self.put(manifest))

    async def replace(self, manifest: Json) -> Json:
        key = self.key_of(manifest)
        live = self.objects.get(key)
        if live is None:
            raise KubeApiError(404, "not found", "NotFound")
        if manifest["metadata"].get("resourceVersion") != live["metadata"]["resourceVersion"]:
            raise KubeApiError(409, "the object has been modified", "Conflict")
        new = copy.deepcopy(manifest)
        new["metadata"] = {**live["metadata"], "resourceVersion": self._next_rv()}
        self.objects[key] = new
        return copy.deepcopy(new)


@dataclass
class FakeNode:
    """One data-plane process: its persisted replication state and what it reports."""

    role: str = "replica"
    epoch: int = 0
    sequence: int = 0
    primary: str | None = None
    history: list[tuple[int, int]] = field(default_factory=list)
    ready: bool = True
    lag_operations: int | None = None
    connected: bool | None = None
    up: bool = True
    streams: bool = True  # follows its primary's log when it can
    # What a caller needs, as its pod was started: the admin key (auth on), and over
    # HTTPS a trust store holding one of these CA certificates (DER).
    api_key: str | None = None
    cas: frozenset[bytes] | None = None

    def report(self) -> NodeStatus:
        return NodeStatus(
            role=self.role,
            epoch=self.epoch,
            sequence=self.sequence,
            primary=self.primary if self.role == "replica" else None,
            history=tuple(self.history),
            node_id="n",
            ready=self.ready,
            lag_operations=self.lag_operations,
            lag_ms=None if self.lag_operations is None else float(self.lag_operations),
            connected=self.connected,
        )


class FakeDataPlane:
    """Nodes by pod name; the URL (pod IP) of each running pod routes to its node."""

    def __init__(self) -> None:
        self.nodes: dict[str, FakeNode] = {}
        self.routes: dict[str, str] = {}  # url -> pod name
        self.calls: list[tuple[str, str, Any]] = []
        self.accesses: list[tuple[str, Access]] = []  # how each status call reached its node

    def _node(self, url: str, access: Access) -> tuple[str, FakeNode]:
        name = self.routes.get(url)
        node = self.nodes.get(name or "")
        if name is None or node is None or not node.up:
            raise DataPlaneError(f"{url}: connection refused")
        if url.startswith("https://") and node.cas is not None:
            trusted = access.ssl.get_ca_certs(binary_form=True) if access.ssl else []
            if not node.cas & {bytes(c) for c in trusted}:
                raise DataPlaneError(f"{url}: certificate verify failed")
        if node.api_key is not None and access.api_key != node.api_key:
            raise DataPlaneError(f"{url}: invalid API key", code="unauthenticated")  # (a 401)
        return name, node

    async def status(self, url: str, access: Access = PLAIN) -> NodeStatus:
        self.accesses.append((url, access))
        return self._node(url, access)[1].report()

    async def promote(self, url: str, epoch: int, access: Access = PLAIN) -> None:
        name, node = self._node(url, access)
        self.calls.append(("promote", name, epoch))
        if epoch <= node.epoch:
            raise DataPlaneError("stale", code="stale_epoch")
        node.role, node.epoch, node.primary = "primary", epoch, None
        node.history.append((epoch, node.sequence + 1))
        node.lag_operations, node.connected = None, None

    async def follow(self, url: str, primary_url: str, epoch: int, access: Access = PLAIN) -> None:
        name, node = self._node(url, access)
        self.calls.append(("follow", name, primary_url))
        if epoch < node.epoch:
            raise DataPlaneError("stale", code="stale_epoch")
        node.role, node.primary, node.epoch = "replica", primary_url, max(node.epoch, epoch)

    async def fence(self, url: str, epoch: int, access: Access = PLAIN) -> None:
        name, node = self._node(url, access)
        self.calls.append(("fence", name, epoch))
        if epoch < node.epoch:
            raise DataPlaneError("stale", code="stale_epoch")
        node.role, node.epoch = "fenced", max(node.epoch, epoch)

    def of(self, kind: str) -> list[tuple[str, Any]]:
        return [(n, arg) for k, n, arg in self.calls if k == kind]


def controller_reference(owner: Json) -> Json:
    """The owner reference a controller puts on what it creates (the StatefulSet's pods)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def cluster_body(name: str = "vz", namespace: str = NS, **spec: Any) -> Json:
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1},
        "spec": spec,
    }


class Sim:
    """One VectorizerCluster, the controllers around it, and the operator's reconciler."""

    def __init__(self, name: str = "vz", *, settings: ReconcileSettings | None = None, **spec: Any):
        self.name = name
        self.kube = FakeKube()
        self.dp = FakeDataPlane()
        self.time = 0.0
        self.wall = datetime.now(UTC)  # what certificates are checked against
        self.settings = settings or ReconcileSettings(
            build=BuildOptions(default_image="vectorizer:test"), switchover_timeout_s=30.0
        )
        self.kube.put(cluster_body(name, **spec))
        self.reconciler = self.new_reconciler()
        self._ips = 0
        self.claims_deleted: list[str] = []

    def new_reconciler(self) -> Reconciler:
        return Reconciler(
            self.kube,
            self.dp,
            self.settings,
            clock=lambda: self.time,
            now=lambda: "2030-01-01T00:00:00Z",
            utcnow=lambda: self.wall,
        )

    # ---- the resource -----------------------------------------------------------------

    @property
    def body(self) -> Json:
        obj = self.kube.find(naming.API_VERSION, naming.KIND, self.name)
        assert obj is not None
        return obj

    @property
    def status(self) -> Json:
        return dict(self.body.get("status") or {})

    def edit_spec(self, **changes: Any) -> None:
        body = self.body
        body["spec"] = merge_patch(body["spec"], changes)
        body["metadata"]["generation"] += 1

    def pod(self, ordinal: int) -> Json | None:
        return self.kube.find("v1", "Pod", naming.pod(self.name, ordinal))

    def pods(self) -> list[Json]:
        return [
            p
            for p in self.kube.of_kind("Pod")
            if p["metadata"]["labels"].get(naming.LABEL_CLUSTER) == self.name
        ]

    def role_labels(self) -> dict[str, str | None]:
        return {
            p["metadata"]["name"]: p["metadata"]["labels"].get(naming.LABEL_ROLE)
            for p in self.pods()
        }

    def node(self, ordinal: int) -> FakeNode:
        return self.dp.nodes[naming.pod(self.name, ordinal)]

    def url(self, ordinal: int) -> str:
        pod = self.pod(ordinal)
        tls = serves_tls(pod["spec"]) if pod is not None else True
        name = naming.pod(self.name, ordinal)
        return naming.advertise_url(self.name, NS, name, "cluster.local", tls=tls)

    # ---- the controllers ----------------------------------------------------------------

    def controllers(self) -> None:
        sts = self.kube.find("apps/v1", "StatefulSet", self.name)
        if sts is None:
            return
        template = sts["spec"]["template"]
        revision = (
            f"{self.name}-"
            + hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        )
        sts["status"] = {
            "observedGeneration": sts["metadata"]["generation"],
            "updateRevision": revision,
            "replicas": len(self.pods()),
        }
        replicas = sts["spec"]["replicas"]
        for pod in self.pods():
            ordinal = naming.ordinal(self.name, pod["metadata"]["name"])
            if ordinal is not None and ordinal >= replicas:
                self.kube.objects.pop(FakeKube.key_of(pod), None)
                if sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Delete":
                    self.dp.nodes.pop(pod["metadata"]["name"], None)
                    self.claims_deleted.append(naming.pvc(self.name, ordinal))
                    self.kube.objects.pop(
                        ("v1", "PersistentVolumeClaim", NS, naming.pvc(self.name, ordinal)), None
                    )
        for ordinal in range(replicas):
            if self.pod(ordinal) is None:
                self._create_pod(sts, ordinal, revision)
        self.replicate()

    def _create_pod(self, sts: Json, ordinal: int, revision: str) -> None:
        name = naming.pod(self.name, ordinal)
        self._ips += 1
        ip = f"10.0.0.{self._ips}"
        labels = {**sts["spec"]["template"]["metadata"]["labels"], naming.LABEL_REVISION: revision}
        self.kube.put(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": NS,
                    "labels": labels,
                    "uid": f"{name}-{self._ips}",
                    "ownerReferences": [controller_reference(sts)],
                },
                "spec": copy.deepcopy(sts["spec"]["template"]["spec"]),
                "status": {
                    "phase": "Running",
                    "podIP": ip,
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
        self.dp.routes = {u: n for u, n in self.dp.routes.items() if n != name}
        pod = self.kube.find("v1", "Pod", name)
        scheme = "https" if pod is not None and serves_tls(pod["spec"]) else "http"
        self.dp.routes[f"{scheme}://{ip}:{naming.HTTP_PORT}"] = name
        node = self.dp.nodes.setdefault(name, FakeNode())
        node.up, node.connected, node.lag_operations = True, None, None
        assert pod is not None
        node.api_key, node.cas = self._pod_material(pod)
        claim = naming.pvc(self.name, ordinal)
        if self.kube.find("v1", "PersistentVolumeClaim", claim) is None:
            template = sts["spec"]["volumeClaimTemplates"][0]
            self.kube.put(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {
                        "name": claim,
                        "namespace": NS,
                        "labels": dict(template["metadata"]["labels"]),
                    },
                    "spec": copy.deepcopy(template["spec"]),
                    "status": {"phase": "Bound"},
                }
            )

    def _secret_value(self, name: str | None, key: str) -> bytes | None:
        secret = self.kube.find("v1", "Secret", name) if name else None
        raw = ((secret or {}).get("data") or {}).get(key)
        return base64.b64decode(raw) if raw else None

    def _pod_material(self, pod: Json) -> tuple[str | None, frozenset[bytes] | None]:
        """The admin key the pod's node requires and the CAs its certificate chains to,
        from the Secrets its spec mounts, as they are when it starts."""
        spec = pod["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes") or ()}
        env = {e["name"] for c in spec["containers"] for e in c.get("env") or ()}
        key = None
        if naming.env_name("auth_admin_key_file") in env:
            sources = volumes[naming.CREDENTIALS_VOLUME]["projected"]["sources"]
            for source in sources:
                for item in source["secret"].get("items") or ():
                    if item["path"] == naming.ADMIN_KEY_FILE:
                        raw = self._secret_value(source["secret"]["name"], item["key"])
                        key = raw.decode().strip() if raw else None
        cas = None
        if serves_tls(spec):
            secret = volumes[naming.TLS_VOLUME]["secret"]["secretName"]
            bundle = self._secret_value(secret, naming.CA_CERT_KEY) or b""
            cas = frozenset(ssl.PEM_cert_to_DER_cert(c.decode()) for c in split_bundle(bundle))
        return key, cas

    def replicate(self) -> None:
        """Replicas streaming from a live primary catch up with it."""
        by_url = {self.url(naming.ordinal(self.name, n) or 0): n for n in self.dp.nodes}
        for node in self.dp.nodes.values():
            if node.role != "replica" or not node.primary or not node.up:
                node.connected = None if node.role != "replica" else False
                continue
            source = self.dp.nodes.get(by_url.get(node.primary, ""))
            if source is None or not source.up or source.role != "primary" or not node.streams:
                node.connected = False
                continue
            https = node.primary.startswith("https://")
            if (https and not (node.cas or frozenset()) & (source.cas or frozenset())) or (
                source.api_key is not None and node.api_key is None
            ):
                # A pod started without TLS (or with another CA) cannot verify an HTTPS
                # primary, one without auth has no replication key: the link fails (the lag it reported
                # last stays, as the data plane's does).
                node.connected = False
                continue
            node.sequence, node.epoch = source.sequence, max(node.epoch, source.epoch)
            node.history = list(source.history)
            node.connected, node.lag_operations = True, 0

    def write(self, n: int = 1) -> None:
        """Client writes to the primary."""
        for node in self.dp.nodes.values():
            if node.role == "primary" and node.up:
                node.sequence += n

    def set_pod_ready(self, ordinal: int, ready: bool) -> None:
        pod = self.pod(ordinal)
        assert pod is not None
        pod["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]

    # ---- driving --------------------------------------------------------------------

    async def step(self, dt: float = 2.0) -> Result:
        self.controllers()
        result = await self.reconciler.reconcile(NS, self.name)
        self.controllers()
        self.time += dt
        return result

    async def settle(self, max_steps: int = 30) -> Json:
        """Step until Healthy twice in a row (the second pass changes nothing)."""
        healthy = 0
        for _ in range(max_steps):
            result = await self.step()
            healthy = healthy + 1 if result.phase == "Healthy" else 0
            if healthy >= 2:
                return self.status
        raise AssertionError(
            f"not Healthy after {max_steps} steps: {self.status.get('phase')}: {self.status.get('phaseReason')}"
        )

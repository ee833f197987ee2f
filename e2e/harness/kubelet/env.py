"""Container environment: env, envFrom, the downward API and $(VAR) expansion."""

import base64
import os
import re
from collections.abc import Mapping

from ..kube import JsonDict, Kube, path
from .config import IMAGE_ENV, PASS_ENV

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ConfigError(Exception):
    """A referenced ConfigMap/Secret/key is missing (the kubelet retries)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, unknown kept, $$ escapes."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _REF.sub(repl, text)


def field_ref(pod: JsonDict, field: str) -> str:
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", field)
    if m:
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    values = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs", [])),
        "status.hostIP": status.get("hostIP"),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs", [])),
    }
    return str(values.get(field) or "")


def _resource_ref(container: JsonDict, ref: JsonDict) -> str:
    kind, _, name = str(ref["resource"]).partition(".")
    # Reported as written in the spec (no divisor arithmetic); enough for tests.
    return str(container.get("resources", {}).get(kind, {}).get(name, "0"))


class EnvBuilder:
    """Resolves references against the API; one per pod start."""

    def __init__(self, kube: Kube, namespace: str, service_env: Mapping[str, str]) -> None:
        self.kube = kube
        self.namespace = namespace
        self.service_env = service_env

    async def _data(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        obj = await self.kube.get_or_none(path(kind, self.namespace, name))
        if obj is None:
            if optional:
                return None
            msg = f"{kind[:-1]} {self.namespace}/{name} not found"
            raise ConfigError(msg)
        if kind == "secrets":
            return {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
        return {str(k): str(v) for k, v in obj.get("data", {}).items()}

    async def _key(self, kind: str, ref: JsonDict) -> str | None:
        data = await self._data(kind, ref["name"], bool(ref.get("optional")))
        if data is None or ref["key"] not in data:
            if ref.get("optional"):
                return None
            msg = f"key {ref['key']} not in {kind[:-1]} {self.namespace}/{ref['name']}"
            raise ConfigError(msg)
        return data[ref["key"]]

    async def build(self, pod: JsonDict, container: JsonDict) -> dict[str, str]:
        env = {k: os.environ[k] for k in PASS_ENV if k in os.environ} | IMAGE_ENV
        env["HOSTNAME"] = str(pod["metadata"]["name"])
        env.update(self.service_env)
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            for kind, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
                if key in source:
                    ref = source[key]
                    data = await self._data(kind, ref["name"], bool(ref.get("optional")))
                    env.update({prefix + k: v for k, v in (data or {}).items()})
        for var in container.get("env", []):
            value = await self._value(pod, container, var, env)
            if value is not None:
                env[var["name"]] = value
        return env

    async def _value(
        self, pod: JsonDict, container: JsonDict, var: JsonDict, env: Mapping[str, str]
    ) -> str | None:
        if "valueFrom" not in var:
            return expand(str(var.get("value", "")), env)
        source = var["valueFrom"]
        if "fieldRef" in source:
            return field_ref(pod, source["fieldRef"]["fieldPath"])
        if "resourceFieldRef" in source:
            return _resource_ref(container, source["resourceFieldRef"])
        if "configMapKeyRef" in source:
            return await self._key("configmaps", source["configMapKeyRef"])
        if "secretKeyRef" in source:
            return await self._key("secrets", source["secretKeyRef"])
        msg = f"env {var['name']}: unsupported valueFrom {sorted(source)}"
        raise ConfigError(msg)

"""Pod volumes as host directories, later bind-mounted at each mountPath.

emptyDir -> a directory of the pod; persistentVolumeClaim/ephemeral -> the bound
PV's hostPath (see provisioner.py); hostPath -> itself; configMap, secret,
downwardAPI and projected (incl. serviceAccountToken via TokenRequest) ->
files written into a directory of the pod.
"""

import base64
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..kube import JsonDict, Kube, KubeError, path
from .env import expand, field_ref


class VolumeError(Exception):
    """A volume cannot be set up yet (e.g. an unbound claim); the pod waits and retries."""


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


FileSet = dict[str, tuple[bytes, int]]  # relative path -> (content, mode)


class VolumeBuilder:
    def __init__(self, kube: Kube, pod: JsonDict, pod_dir: Path) -> None:
        self.kube = kube
        self.pod = pod
        self.namespace = str(pod["metadata"]["namespace"])
        self.root = pod_dir / "volumes"

    async def prepare(self) -> dict[str, Path]:
        """Host path of every volume in the pod spec, by volume name."""
        result: dict[str, Path] = {}
        for volume in self.pod["spec"].get("volumes", []):
            result[volume["name"]] = await self._volume(volume)
        return result

    async def refresh(self) -> None:
        """Rewrite projected files (ConfigMap/Secret updates show up, like the kubelet's sync)."""
        for volume in self.pod["spec"].get("volumes", []):
            if {"configMap", "secret", "downwardAPI", "projected"} & volume.keys():
                await self._volume(volume)

    async def _volume(self, volume: JsonDict) -> Path:
        name = str(volume["name"])
        if "emptyDir" in volume:
            target = self.root / name
            target.mkdir(parents=True, exist_ok=True)
            return target
        if "persistentVolumeClaim" in volume:
            return await self._claim(volume["persistentVolumeClaim"]["claimName"])
        if "ephemeral" in volume:
            # The ephemeral-volume controller names the claim <pod>-<volume>.
            return await self._claim(f"{self.pod['metadata']['name']}-{name}")
        if "hostPath" in volume:
            return _host_path(volume["hostPath"])
        for kind in ("configMap", "secret", "downwardAPI", "projected"):
            if kind in volume:
                files = await self._files(kind, volume[kind])
                return _write_files(self.root / name, files)
        msg = f"volume {name}: unsupported source {sorted(set(volume) - {'name'})}"
        raise VolumeError(msg)

    async def _claim(self, claim: str) -> Path:
        pvc = await self.kube.get_or_none(path("persistentvolumeclaims", self.namespace, claim))
        if pvc is None:
            msg = f"persistentvolumeclaim {claim} not found"
            raise VolumeError(msg)
        volume_name = pvc.get("spec", {}).get("volumeName")
        if pvc.get("status", {}).get("phase") != "Bound" or not volume_name:
            msg = f"persistentvolumeclaim {claim} is not bound"
            raise VolumeError(msg)
        pv = await self.kube.get(path("persistentvolumes", name=volume_name))
        source = pv["spec"].get("hostPath") or pv["spec"].get("local")
        if not source:
            msg = f"persistentvolume {volume_name}: only hostPath/local volumes can be mounted here"
            raise VolumeError(msg)
        target = Path(source["path"])
        target.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - local, instant
        return target

    async def _files(self, kind: str, source: JsonDict) -> FileSet:
        mode = int(source.get("defaultMode", 0o644))
        if kind == "configMap":
            return await self._object_files("configmaps", source["name"], source, mode)
        if kind == "secret":
            return await self._object_files("secrets", source["secretName"], source, mode)
        if kind == "downwardAPI":
            return self._downward(source.get("items", []), mode)
        files: FileSet = {}
        for item in source.get("sources", []):
            if "configMap" in item:
                ref = item["configMap"]
                files.update(await self._object_files("configmaps", ref["name"], ref, mode))
            elif "secret" in item:
                ref = item["secret"]
                files.update(await self._object_files("secrets", ref["name"], ref, mode))
            elif "downwardAPI" in item:
                files.update(self._downward(item["downwardAPI"].get("items", []), mode))
            elif "serviceAccountToken" in item:
                ref = item["serviceAccountToken"]
                files[ref["path"]] = (await self._token(ref), mode)
            else:
                msg = f"projected source {sorted(item)} unsupported"
                raise VolumeError(msg)
        return files

    async def _object_files(self, kind: str, name: str, ref: JsonDict, mode: int) -> FileSet:
        obj = await self.kube.get_or_none(path(kind, self.namespace, name))
        if obj is None:
            if ref.get("optional"):
                return {}
            msg = f"{kind[:-1]} {self.namespace}/{name} not found"
            raise VolumeError(msg)
        data: dict[str, bytes] = {
            k: base64.b64decode(v) for k, v in obj.get("binaryData", {}).items()
        }
        if kind == "secrets":
            data.update({k: base64.b64decode(v) for k, v in obj.get("data", {}).items()})
        else:
            data.update({k: str(v).encode() for k, v in obj.get("data", {}).items()})
        items = ref.get("items")
        if not items:
            return {k: (v, mode) for k, v in data.items()}
        files: FileSet = {}
        for item in items:
            if item["key"] in data:
                files[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
            elif not ref.get("optional"):
                msg = f"key {item['key']} not in {kind[:-1]} {self.namespace}/{name}"
                raise VolumeError(msg)
        return files

    def _downward(self, items: list[JsonDict], mode: int) -> FileSet:
        files: FileSet = {}
        meta = self.pod["metadata"]
        for item in items:
            field = item.get("fieldRef", {}).get("fieldPath", "")
            if field in ("metadata.labels", "metadata.annotations"):
                pairs = meta.get(field.split(".")[1], {})
                text = "\n".join(f'{k}="{v}"' for k, v in sorted(pairs.items()))
            else:
                text = field_ref(self.pod, field)
            files[item["path"]] = (text.encode(), int(item.get("mode", mode)))
        return files

    async def _token(self, ref: JsonDict) -> bytes:
        meta = self.pod["metadata"]
        account = self.pod["spec"].get("serviceAccountName") or "default"
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [ref["audience"]] if ref.get("audience") else [],
                "expirationSeconds": int(ref.get("expirationSeconds", 3607)),
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        try:
            answer = await self.kube.create(
                path("serviceaccounts", self.namespace, account, "token"), request
            )
        except KubeError as e:
            msg = f"token for serviceaccount {account}: {e}"
            raise VolumeError(msg) from e
        return str(answer["status"]["token"]).encode()


def _host_path(source: JsonDict) -> Path:
    target = Path(source["path"])
    kind = source.get("type", "")
    if kind == "DirectoryOrCreate":
        target.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate" and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    elif not target.exists() and kind:
        msg = f"hostPath {target} ({kind}) does not exist"
        raise VolumeError(msg)
    return target


def _holds(target: Path, content: bytes, mode: int) -> bool:
    try:
        return target.stat().st_mode & 0o7777 == mode and target.read_bytes() == content
    except OSError:
        return False


def _write_files(directory: Path, files: FileSet) -> Path:
    """Make `directory` hold exactly `files`, keeping the directory (a bind-mount source)."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {directory / rel for rel in files}
    for existing in list(directory.rglob("*")):
        if existing.is_file() and existing not in wanted:
            existing.unlink()
    for rel, (content, mode) in files.items():
        target = directory / rel
        if _holds(target, content, mode):
            continue  # like the kubelet: an unchanged file is left alone (watchers see no event)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(content)
        tmp.chmod(mode)
        tmp.replace(target)
    return directory


def container_mounts(
    container: JsonDict, volumes: Mapping[str, Path], env: Mapping[str, str]
) -> list[Mount]:
    """The container's volumeMounts as bind mounts, parents before children."""
    mounts = []
    for vm in container.get("volumeMounts", []):
        if vm["name"] not in volumes:
            msg = f"volumeMount {vm['name']}: no such volume"
            raise VolumeError(msg)
        source = volumes[vm["name"]]
        sub = vm.get("subPath") or expand(vm.get("subPathExpr", ""), env)
        if sub:
            source = source / sub
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(Mount(source, vm["mountPath"], bool(vm.get("readOnly"))))
    return sorted(mounts, key=lambda m: m.target.rstrip("/").count("/"))


def remove_tree(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)

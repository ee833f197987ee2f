"""A hostPath provisioner, the stand-in for a CSI driver.

It owns a default StorageClass. For each PVC of that class it creates a PV
pre-bound to the claim (claimRef) whose hostPath is a directory of its own;
kube-controller-manager's persistentvolume-binder then binds the pair as it
would for any external provisioner. With reclaimPolicy Delete, a Released PV
loses its directory and is deleted.
"""

import asyncio
import logging
import shutil
from pathlib import Path

from ..kube import JsonDict, Kube, KubeError, path
from .config import PROVISIONER, STORAGE_CLASS

log = logging.getLogger(__name__)
_SC = "storageclasses"
_SC_GROUP = "storage.k8s.io"


class Provisioner:
    def __init__(self, kube: Kube, volumes_dir: Path) -> None:
        self.kube = kube
        self.volumes_dir = volumes_dir

    async def ensure_storage_class(self) -> None:
        sc = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        try:
            await self.kube.create(path(_SC, group=_SC_GROUP), sc)
        except KubeError as e:
            if e.status != 409:
                raise

    async def run(self) -> None:
        await asyncio.gather(self._claims(), self._volumes())

    async def _claims(self) -> None:
        async for event, pvc in self.kube.watch(path("persistentvolumeclaims")):
            if event != "DELETED":
                try:
                    await self._provision(pvc)
                except Exception:
                    log.exception("provisioning %s failed", pvc["metadata"].get("name"))

    async def _volumes(self) -> None:
        async for event, pv in self.kube.watch(path("persistentvolumes")):
            if event != "DELETED" and pv.get("status", {}).get("phase") == "Released":
                try:
                    await self._reclaim(pv)
                except Exception:
                    log.exception("reclaiming %s failed", pv["metadata"]["name"])

    async def _ours(self, class_name: str) -> tuple[bool, str]:
        sc = await self.kube.get_or_none(path(_SC, name=class_name, group=_SC_GROUP))
        if sc is None or sc.get("provisioner") != PROVISIONER:
            return False, ""
        return True, str(sc.get("reclaimPolicy", "Delete"))

    async def _provision(self, pvc: JsonDict) -> None:
        meta, spec = pvc["metadata"], pvc.get("spec", {})
        if (
            spec.get("volumeName")
            or pvc.get("status", {}).get("phase") != "Pending"
            or meta.get("deletionTimestamp")
        ):
            return
        ours, reclaim = await self._ours(str(spec.get("storageClassName") or ""))
        if not ours:
            return
        name = f"pvc-{meta['uid']}"
        directory = self.volumes_dir / name
        directory.mkdir(parents=True, exist_ok=True)
        pv: JsonDict = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": name,
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            },
            "spec": {
                "capacity": {
                    "storage": spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")
                },
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "volumeMode": spec.get("volumeMode", "Filesystem"),
                "persistentVolumeReclaimPolicy": reclaim,
                "storageClassName": spec["storageClassName"],
                "hostPath": {"path": str(directory), "type": "Directory"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        try:
            await self.kube.create(path("persistentvolumes"), pv)
            log.info("provisioned %s for %s/%s", name, meta["namespace"], meta["name"])
        except KubeError as e:
            if e.status != 409:
                raise

    async def _reclaim(self, pv: JsonDict) -> None:
        meta, spec = pv["metadata"], pv.get("spec", {})
        if meta.get("annotations", {}).get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            return
        if spec.get("persistentVolumeReclaimPolicy") != "Delete":
            return
        directory = Path(spec.get("hostPath", {}).get("path", ""))
        if directory.parent == self.volumes_dir:
            await asyncio.to_thread(shutil.rmtree, directory, True)
        await self.kube.delete(path("persistentvolumes", name=meta["name"]))
        log.info("deleted released %s", meta["name"])

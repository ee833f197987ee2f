"""Tar archives for tests of snapshot files: read one whole, or build one (hostile ones
too) from names and bytes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def members(path: Path) -> dict[str, bytes]:
    """Every entry of the archive at ``path`` and its bytes."""
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


def tar(files: dict[str, bytes], links: dict[str, bytes] | None = None) -> bytes:
    """An archive of ``files``, then an entry of each type in ``links`` (a symlink,
    a hard link, ...) pointing at /etc/passwd."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, kind in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/passwd"
            archive.addfile(info)
    return out.getvalue()

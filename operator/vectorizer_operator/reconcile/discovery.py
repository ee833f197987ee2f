"""Whether the API server serves a group's kinds (discovery), asked rarely and cached.

Optional integrations (the Prometheus Operator, cert-manager) are used only when their
CRDs are installed; installing or removing them is noticed within ``recheck_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from vectorizer_operator.reconcile.ports import Kube, KubeApiError

log = logging.getLogger(__name__)


class Discovery:
    """Whether ``api_version`` serves every one of ``kinds``.

    Asked of the API server at most once per ``recheck_s``, or again after ``invalidate``.
    """

    def __init__(
        self,
        kube: Kube,
        api_version: str,
        kinds: Sequence[str],
        *,
        recheck_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.kube = kube
        self.api_version = api_version
        self.kinds = tuple(kinds)
        self.recheck_s = recheck_s
        self.clock = clock
        self._answer: tuple[bool, float] | None = None

    def invalidate(self) -> None:
        self._answer = None

    async def available(self) -> bool:
        now = self.clock()
        if self._answer is not None and now - self._answer[1] < self.recheck_s:
            return self._answer[0]
        try:
            found = True
            for kind in self.kinds:
                found = found and await self.kube.serves(self.api_version, kind)
        except KubeApiError as err:
            previous = self._answer[0] if self._answer is not None else False
            log.warning("discovery of %s failed: %s", self.api_version, err)
            self._answer = (previous, now)  # not again at once: the next recheck
            return previous
        if self._answer is None or self._answer[0] != found:
            log.info("%s is %s", self.api_version, "served" if found else "not served")
        self._answer = (found, now)
        return found

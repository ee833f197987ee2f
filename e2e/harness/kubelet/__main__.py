"""python -m e2e.harness.kubelet --node-name … (see config.py for flags)."""

import asyncio
import contextlib
import logging
import signal

from ..kube import Kube
from .config import parse_args
from .kubelet import Kubelet


async def main() -> None:
    config = parse_args()
    kube = await Kube.from_kubeconfig(config.kubeconfig)
    kubelet = Kubelet(kube, config)
    runner = asyncio.ensure_future(kubelet.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    finally:
        await kubelet.shutdown()
        await kube.close()
        logging.getLogger(__name__).info("process kubelet stopped")


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(main())

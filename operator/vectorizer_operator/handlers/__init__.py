"""kopf handlers: decorators and wiring only (importing this package registers them).

No handler changes anything: they index clusters, wake the reconcile loop when a
cluster or one of its pods changes, and start/stop the runtime. The loop (leader
only) does the work, so no kopf finalizer or progress annotation is ever written.
"""

from vectorizer_operator.handlers import clusters, lifecycle

__all__ = ["clusters", "lifecycle"]

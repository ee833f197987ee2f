"""A "process kubelet": registers a Node and runs the pods bound to it as local
processes, each pod in its own network, mount and UTS namespaces.

It replaces only the container runtime: scheduling, controllers, endpoints and
volume binding stay with the real control plane. Images are ignored; the
container's command (or a default entrypoint) runs directly on the host's
filesystem, with volumes bind-mounted at their mountPath inside the pod's
private mount namespace.
"""

"""A local Kubernetes cluster for e2e tests: real control-plane binaries plus a
process kubelet that runs pods as local processes in their own network and
mount namespaces."""

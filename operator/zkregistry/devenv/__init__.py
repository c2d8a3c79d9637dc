"""The local environment for tests, the demo and benchmarks: a real Kubernetes control plane run
as processes by kwokctl, and a real ZooKeeper ensemble on loopback. Never used in production."""

"""zkregistry: mirrors the Pod readiness of opted-in Deployments into ZooKeeper registrations."""

__version__ = "0.1.0"

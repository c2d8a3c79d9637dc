"""The names that zkregistry shares with users and with Kubernetes: fixed for users (README, ARCHITECTURE.md)."""

GROUP = "zkregistry.io"
VERSION = "v1alpha1"
KIND = "ServiceRegistry"
PLURAL = "serviceregistries"
POLICY_KIND = "RegistryPolicy"
POLICY_PLURAL = "registrypolicies"

#: Deployment annotation that opts its pods in: the name of a ServiceRegistry in its namespace.
REGISTRY_ANNOTATION = "zkregistry.io/registry"
#: Optional Deployment annotation that overrides the registry's port (a container port name or number).
PORT_ANNOTATION = "zkregistry.io/port"
#: Finalizer on our own ServiceRegistry objects only, so that their registrations are removed first.
FINALIZER = "zkregistry.io/cleanup"

DEFAULT_BASE_PATH = "/services"

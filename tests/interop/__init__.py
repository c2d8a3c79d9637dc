"""Programs of other ecosystems that the tests run against zkregistry (see curator/)."""

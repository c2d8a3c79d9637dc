"""The kopf side's settings: no diff-base, which is safe only while no handler detects changes."""

from __future__ import annotations

import asyncio

import kopf

from zkregistry import handlers
from zkregistry.inventory import Inventory


def test_no_handler_needs_a_diff_base():
    """kopf builds an essence per event only for change-detecting (on.create/update/field) and
    spawning (daemon, timer) handlers; with `NoDiffBase` such a handler would never see a change."""
    registry = handlers.registry_for(Inventory())
    assert registry._indexing.get_all_handlers(), "the registry holds our handlers"
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()


def test_the_startup_settings_copy_no_body_per_event():
    registry = handlers.registry_for(Inventory())
    settings = kopf.OperatorSettings()
    for handler in registry._activities.get_all_handlers():
        if handler.activity is not None and handler.activity.value == "startup":
            asyncio.run(handler.fn(settings=settings))
    storage = settings.persistence.diffbase_storage
    assert isinstance(storage, handlers.NoDiffBase)
    raw = {"metadata": {"name": "r", "annotations": {"a": "b"}}, "spec": {"x": 1}, "status": {"m": [1] * 1000}}
    body = kopf.Body(raw)
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None

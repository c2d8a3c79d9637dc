"""What the controller freezes after a takeover or a full read: never a dead reference cycle.

Review finding: `gc.freeze` moves unreachable cycles too, and a cycle is freed only by a
collection; a connection lost fails every request in flight, each a cycle (the exception, its
traceback, the frame, the async result), so each reconnect's freeze would have kept them for
good."""

from __future__ import annotations

import contextlib
import gc
import weakref

from kazoo.exceptions import ConnectionLoss
from kazoo.handlers.threading import SequentialThreadingHandler

from zkregistry import controller


def failed_request() -> weakref.ref:
    """An async result in the oldest generation that failed, as on a lost connection, and is no
    longer referenced but by its own cycle."""
    result = SequentialThreadingHandler().async_result()
    gc.collect()  # into the oldest generation, as a request long in flight
    result.set_exception(ConnectionLoss())
    with contextlib.suppress(ConnectionLoss):
        result.get()
    return weakref.ref(result)


def test_a_dead_cycle_is_collected_not_frozen():
    gc.unfreeze()
    try:
        dead = failed_request()
        controller._freeze_long_lived()
        gc.collect()
        assert dead() is None, "a dead cycle was frozen"
    finally:
        gc.unfreeze()


def test_what_a_freeze_kept_and_died_since_is_collected_at_the_next():
    gc.unfreeze()
    try:
        alive = failed_request()
        keep = alive()  # still referenced at the first freeze
        controller._freeze_long_lived()
        del keep
        gc.collect()
        assert alive() is not None, "frozen: a collection does not see it"
        controller._freeze_long_lived()
        assert alive() is None, "a cycle frozen while alive was never collected"
    finally:
        gc.unfreeze()

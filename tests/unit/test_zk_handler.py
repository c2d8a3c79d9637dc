"""zk.Handler: kazoo's select, waiting with poll(2), answers as kazoo's own does."""

from __future__ import annotations

import socket

from kazoo.handlers.utils import selector_select

from zkregistry import zk


def test_the_poll_handler_selects_what_kazoos_selects():
    a, b = socket.socketpair()
    try:
        handler = zk.Handler()
        assert handler.select([a, b], [], [], 0.05) == ([], [], [])  # nothing to read yet
        b.send(b"x")
        assert handler.select([a, b], [], [], 0.5)[0] == [a]
        assert handler.select([], [b], [], 0.5)[1] == [b]
        for lists in (([a, b], [], []), ([a], [a], []), ([b], [a, b], [])):  # as kazoo's, quirks included
            assert handler.select(*lists, 0.5) == selector_select(*lists, 0.5)
    finally:
        a.close()
        b.close()

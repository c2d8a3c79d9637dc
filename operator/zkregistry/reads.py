"""Batched reads: ZooKeeper's multiRead (servers 3.6 and later), which kazoo 2.11 does not offer.

    result = reads.get_many(client, ["/services/web/a", "/services/web/b"])   # IAsyncResult
    result.get()  # [(data, ZnodeStat) or a KazooException such as NoNodeError, ...], in order

One request and one reply carry many reads. A stat per znode costs kazoo a request, a reply, an
async result and a callback each; at 10,000 znodes that is over a CPU second, against a few
hundredths for a hundred of these. Unlike a `multi`, a multiRead is not atomic and writes
nothing: each read succeeds or fails on its own, and the server that the session is connected to
answers it, in order with the session's other requests, as it answers a plain read.

A server older than 3.6 answers an unknown request with UnimplementedError and then closes the
connection, and that reply may overtake the replies to earlier requests, which kazoo cannot
match up: it then closes the client for good. So `supported` asks on a session of its own, and
only a session that it found answering may send one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from kazoo.client import KazooClient
from kazoo.exceptions import EXCEPTIONS, KazooException, UnimplementedError
from kazoo.protocol.serialization import (
    GetData,
    MultiHeader,
    ZnodeStat,
    int_struct,
    multiheader_struct,
    read_buffer,
    stat_struct,
)

log = logging.getLogger(__name__)

MULTI_READ = 22  # ZooDefs.OpCode.multiRead
_ERROR = -1  # the type of a result header that an error code follows

Result = tuple[bytes, ZnodeStat] | KazooException


class MultiRead:
    """The request: a getData of each path (no watch), in kazoo's protocol interface (`type`,
    `serialize`, `deserialize`) so that kazoo's connection sends it and reads its reply."""

    type = MULTI_READ

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = paths

    def serialize(self) -> bytearray:
        out = bytearray()
        for path in self.paths:
            out += MultiHeader(GetData.type, False, -1).serialize()
            out += GetData(path, None).serialize()
        return out + multiheader_struct.pack(-1, True, -1)

    @classmethod
    def deserialize(cls, buffer: bytes, offset: int) -> list[Result]:
        results: list[Result] = []
        while True:
            kind, done, _ = multiheader_struct.unpack_from(buffer, offset)
            offset += multiheader_struct.size
            if done:
                return results
            if kind == GetData.type:
                data, offset = read_buffer(buffer, offset)
                results.append((data or b"", ZnodeStat._make(stat_struct.unpack_from(buffer, offset))))
                offset += stat_struct.size
            elif kind == _ERROR:
                code = int_struct.unpack_from(buffer, offset)[0]
                offset += int_struct.size
                results.append(EXCEPTIONS[code]())
            else:
                raise ValueError(f"unexpected result of type {kind} in a multiRead reply")

    def __repr__(self) -> str:
        return f"MultiRead({len(self.paths)} paths)"


def get_many(client: KazooClient, paths: Sequence[str]):
    """Sends one multiRead of `paths` (absolute, under the client's chroot if it has one); returns
    kazoo's async result, whose value is one `Result` per path, in order. Never blocks."""
    result = client.handler.async_result()
    root = client.chroot or ""
    client._call(MultiRead([root + path for path in paths]), result)
    return result


def supported(connect: Callable[[], KazooClient], timeout: float) -> bool | None:
    """Whether the ensemble answers a multiRead, asked on a session of its own: `connect()` makes
    a client that is not started, configured as the operator's. True: it answered; False: it
    refused (UnimplementedError, a server older than 3.6); None: no answer within `timeout`
    seconds, so ask again later. Blocking; never raises."""
    client = None
    try:
        client = connect()
        client.start(timeout=timeout)
        get_many(client, ["/"]).get(timeout=timeout)  # any answer, NoAuth on "/" included
        answer: bool | None = True
    except UnimplementedError:
        log.info("ZooKeeper does not answer multiRead (older than 3.6): znodes are read one at a time")
        answer = False
    except Exception as error:  # no answer: not known yet
        log.info("could not ask ZooKeeper whether it answers multiRead (%s); asking again later", error)
        answer = None
    finally:
        if client is not None:
            client.stop()
            client.close()
    return answer

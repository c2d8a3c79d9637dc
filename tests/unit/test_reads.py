"""reads.MultiRead on the wire, and the mirror's version checks on a server without multiRead.

The wire format is ZooKeeper's (a MultiHeader before each op and each result, a done header at
the end); a real server answers it in tests/zk/test_writer.py."""

from __future__ import annotations

import threading
import time

from kazoo.exceptions import ConnectionLoss, NoAuthError, NoNodeError, UnimplementedError
from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.protocol.serialization import GetData, ZnodeStat, int_struct, multiheader_struct, stat_struct

from zkregistry import formats, reads
from zkregistry.membership import Membership
from zkregistry.model import Instance
from zkregistry.plan import Create

STAT = ZnodeStat(1, 2, 3, 4, 5, 0, 0, 77, 5, 0, 6)


def _buffer(data: bytes) -> bytes:
    return int_struct.pack(len(data)) + data


def test_a_request_is_a_getdata_of_each_path_between_headers():
    request = reads.MultiRead(["/a", "/bc"])
    expected = (
        multiheader_struct.pack(GetData.type, False, -1)
        + _buffer(b"/a")
        + b"\0"
        + multiheader_struct.pack(GetData.type, False, -1)
        + _buffer(b"/bc")
        + b"\0"
        + multiheader_struct.pack(-1, True, -1)
    )
    assert request.type == 22
    assert bytes(request.serialize()) == expected


def test_a_reply_gives_each_read_its_data_and_stat_or_its_error_in_order():
    reply = (
        b"junk"  # the reply header that kazoo has read already
        + multiheader_struct.pack(GetData.type, False, 0)
        + _buffer(b"alpha")
        + stat_struct.pack(*STAT)
        + multiheader_struct.pack(-1, False, NoNodeError.code)
        + int_struct.pack(NoNodeError.code)
        + multiheader_struct.pack(GetData.type, False, 0)
        + int_struct.pack(-1)  # no data at all
        + stat_struct.pack(*STAT)
        + multiheader_struct.pack(-1, False, NoAuthError.code)
        + int_struct.pack(NoAuthError.code)
        + multiheader_struct.pack(-1, True, -1)
    )
    answers = reads.MultiRead.deserialize(reply, 4)
    assert answers[0] == (b"alpha", STAT)
    assert isinstance(answers[1], NoNodeError)
    assert answers[2] == (b"", STAT)
    assert isinstance(answers[3], NoAuthError)
    assert len(answers) == 4


class OldServer:
    """A client of an ensemble that a server older than 3.6 joined after `reads.supported` said
    yes: a multiRead is answered UnimplementedError, a stat finds every znode as the mirror holds
    it, a read finds a member; listings answer `children` (never, if None)."""

    chroot = ""

    def __init__(self, version: int, session: int) -> None:
        self.handler = SequentialThreadingHandler()
        self.handler.start()
        self.multi_reads: list[list[str]] = []
        self.stats: list[str] = []
        self.answered = threading.Semaphore(0)
        self.version, self.session = version, session
        self.children: list[str] | None = None  # what a listing answers; None: never answered
        self.refusal: Exception = UnimplementedError()  # what a multiRead gets
        self.reads: list[str] = []

    def _call(self, request, result) -> None:
        self.multi_reads.append(list(request.paths))
        result.set_exception(self.refusal)

    def exists_async(self, path: str):
        self.stats.append(path)
        result = self.handler.async_result()
        result.rawlink(lambda _: self.answered.release())
        result.set(STAT._replace(version=self.version, ephemeralOwner=self.session))
        return result

    def get_children_async(self, path: str, watch=None):
        result = self.handler.async_result()
        if self.children is not None:
            result.set(list(self.children))
        return result

    def get_async(self, path: str):
        self.reads.append(path)
        result = self.handler.async_result()
        result.set((b'{"name":"web","id":"vm","address":"10.9.0.1","port":80}', STAT))
        return result


def test_a_refused_multiread_makes_every_registration_be_checked_by_a_stat_of_its_own():
    client = OldServer(version=0, session=7)
    try:
        mirror = Membership(client, on_change=lambda path, keys: None, owner="me", batched=True)
        mirror.watch("/s")
        codec, creates = formats.codec("curator"), []
        for i in range(5):
            instance = Instance(f"uid-{i}", "web", "10.0.0.1", 80, "ns", f"pod-{i}", "web", 0)
            data, member = codec.encode(instance, "me"), codec.member(instance, "me")
            creates.append(Create(instance.id, data, uid=instance.id, member=member))
        mirror.applied("/s", creates, [f"/s/uid-{i}" for i in range(5)], session=7)
        mirror.verify(3, start=True)  # one multiRead, refused: its three as stats, and stats from then on
        for _ in range(3):
            assert client.answered.acquire(timeout=5)
        mirror.verify(3)
        for _ in range(2):
            assert client.answered.acquire(timeout=5)
        assert client.multi_reads == [[f"/s/{c.name}" for c in creates[-3:]]]
        assert sorted(client.stats) == sorted(f"/s/{c.name}" for c in creates)
        mirror.allow_batches(True)  # a later probe, answered by a newer server of the ensemble
        assert not mirror.batched, "a probe turned batches on again after a server refused one"
    finally:
        client.handler.stop()


class Probe:
    """A client that `reads.supported` starts, asks and closes; `answer` is what it gets."""

    chroot = ""

    def __init__(self, answer: Exception | None = None, starts: bool = True) -> None:
        self.handler = SequentialThreadingHandler()
        self.answer, self.starts, self.closed = answer, starts, False

    def start(self, timeout: float) -> None:
        if not self.starts:
            raise self.handler.timeout_exception("no server answered")

    def _call(self, request, result) -> None:
        if self.answer is None:
            result.set([(b"", STAT)])
        else:
            result.set_exception(self.answer)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_the_probe_tells_yes_no_and_not_known_apart_and_always_closes_its_session():
    for probe, expected in (
        (Probe(), True),
        (Probe(answer=UnimplementedError()), False),  # an older server: no
        (Probe(answer=ConnectionLoss()), None),  # no answer: not known, asked again later
        (Probe(starts=False), None),
    ):
        assert reads.supported(lambda probe=probe: probe, timeout=1.0) is expected
        assert probe.closed


def test_a_refused_multiread_of_new_children_reads_them_one_at_a_time():
    client = OldServer(version=0, session=7)
    client.children = ["vm-1", "vm-2"]
    try:
        mirror = Membership(client, on_change=lambda path, keys: None, owner="me", batched=True)
        mirror.watch("/s")  # listed: two new children, a multiRead refused, listed and read again
        deadline = time.monotonic() + 5
        while not (mirror.has("/s", "vm-1") and mirror.has("/s", "vm-2")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(client.reads) == ["/s/vm-1", "/s/vm-2"]
        assert client.multi_reads == [["/s/vm-1", "/s/vm-2"]] and not mirror.batched
        assert mirror.snapshot("/s")["vm-1"].member.address == "10.9.0.1"
    finally:
        client.handler.stop()


def test_a_multiread_reply_that_cannot_be_read_makes_a_refresh_read_one_at_a_time():
    """Found by review: a reply that kazoo could not deserialise (ValueError from `MultiRead`, or
    kazoo's RuntimeError for an unknown error code) escaped `refresh`, which the controller does
    not expect: every turn would have failed the same way."""
    client = OldServer(version=0, session=7)
    client.refusal = ValueError("unexpected result of type 9 in a multiRead reply")
    client.children = ["vm-1"]
    try:
        mirror = Membership(client, on_change=lambda path, keys: None, owner="me", batched=True)
        mirror._nodes["/s"], mirror._keys["/s"] = {}, {}  # mirrored, its watch's listing not sent
        mirror.refresh("/s")
        assert mirror.has("/s", "vm-1") and client.reads == ["/s/vm-1"]
        assert client.multi_reads == [["/s/vm-1"]] and not mirror.batched
    finally:
        client.handler.stop()

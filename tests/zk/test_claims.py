"""Path claims against a real ensemble: written fenced, found by a new leader, never taken twice,
released only once unwanted for the grace period."""

from __future__ import annotations

import pytest
from kazoo.exceptions import NoNodeError

from zk.conftest import new_client
from zkregistry.admission import Claim
from zkregistry.claims import Claims


def test_claims_are_fenced_persistent_and_exclusive(ensemble, zk, root):
    fence = zk.create(f"{root}/fence", b"")
    first, second = new_client(ensemble), new_client(ensemble)
    try:
        mine, theirs = Claims(first, root, timeout=4), Claims(second, root, timeout=4)
        mine.load()
        theirs.load()
        assert mine.claim(Claim("/services/web", "a", "web"), fence)
        # Another leader that has not seen it yet finds it taken, and learns who holds it.
        assert not theirs.claim(Claim("/services/web", "b", "web"), fence)
        assert theirs.claims["/services/web"].namespace == "a"
        # A session's end changes nothing: the claim is persistent, and a new reader finds it.
        first.stop()
        again = Claims(second, root, timeout=4)
        again.load()
        assert again.claims == {"/services/web": Claim("/services/web", "a", "web")}
        # Without the fence, nothing is written.
        with pytest.raises(NoNodeError):
            again.claim(Claim("/services/api", "a", "api"), f"{root}/no-such-fence")
        assert "/services/api" not in again.claims
        assert len(zk.get_children(f"{root}/claims")) == 1
    finally:
        first.close()
        second.stop()
        second.close()


def test_a_claim_is_released_only_once_unwanted_for_the_grace(ensemble, zk, root):
    fence = zk.create(f"{root}/fence", b"")
    client = new_client(ensemble)
    try:
        claims = Claims(client, root, timeout=4)
        claims.load()
        claims.claim(Claim("/services/web", "a", "web"), fence)
        claims.claim(Claim("/services/api", "a", "api"), fence)
        wanted = {("a", "/services/api"), ("b", "/services/web")}  # only another namespace wants web
        assert claims.release_unwanted(wanted, fence, 3600) == []  # the grace starts now
        assert claims.release_unwanted(wanted, fence, 0) == ["/services/web"]
        assert set(claims.claims) == {"/services/api"}
        fresh = Claims(client, root, timeout=4)
        fresh.load()
        assert set(fresh.claims) == {"/services/api"}
    finally:
        client.stop()
        client.close()

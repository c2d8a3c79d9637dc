"""Path claims: which namespace owns which service path, recorded in ZooKeeper. Leader only.

A claim is a PERSISTENT znode `<root>/claims/<path, percent-encoded>` holding
`{"path", "namespace", "name"}`, written by the leader (fenced by its election znode, like every
write) when a registry is first admitted to a free path. From then on the path belongs to that
namespace: a registry of another namespace for it is refused however old it is, so deleting and
re-creating a registry never hands the path to a squatter. The claim lives under the
installation's own root, so it survives every leader change and restart, and it is released
only when no registry of its namespace has wanted the path for `release_after` seconds (the
leader's own count: a new leader starts counting afresh, so a claim is never released early).
"""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import quote, unquote

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError, RolledBackError

from zkregistry import zk
from zkregistry.admission import Claim

log = logging.getLogger(__name__)


def node_name(path: str) -> str:
    """A service path as one znode name ("/services/web" -> "%2Fservices%2Fweb")."""
    return quote(path, safe="")


class Claims:
    def __init__(self, client: KazooClient, root: str, acl: list | None = None, timeout: float = 10.0) -> None:
        """`root` is the installation's root (`/zkregistry/<owner id>`); claims live under `root/claims`."""
        self.client = client
        self.folder = f"{root}/claims"
        self.acl = acl
        self.timeout = timeout
        self.claims: dict[str, Claim] = {}
        self.loaded = False
        self._unwanted: dict[str, float] = {}  # path -> since when no registry of its namespace wants it

    def load(self) -> None:
        """Reads every claim, the reads pipelined (at takeover: it delays the first plan by one
        round trip and the transfer of the claims). Bounded calls; raises zk.ERRORS."""
        zk.wait(self.client.ensure_path_async(self.folder, acl=self.acl), self.timeout)
        claims: dict[str, Claim] = {}
        names = zk.wait(self.client.get_children_async(self.folder), self.timeout)
        reads = [(name, self.client.get_async(f"{self.folder}/{name}")) for name in names]  # pipelined
        for name, read in reads:
            try:
                data, _ = zk.wait(read, self.timeout)
                value = json.loads(data)
                claims[value["path"]] = Claim(value["path"], value["namespace"], value.get("name") or "")
            except NoNodeError:
                continue
            except (ValueError, KeyError, TypeError):
                log.warning("claim %s is unreadable; its path stays claimed by nobody we know", unquote(name))
                claims[unquote(name)] = Claim(unquote(name), "", "")
        self.claims = claims
        self.loaded = True

    def claim(self, claim: Claim, fence: str) -> bool:
        """Records `claim` if the path is free, fenced by `fence`; False if someone claimed it first
        (the claims are then read again). Raises zk.ERRORS on other failures."""
        node = f"{self.folder}/{node_name(claim.path)}"
        data = json.dumps({"path": claim.path, "namespace": claim.namespace, "name": claim.name}).encode()
        tx = self.client.transaction()
        tx.check(fence, -1)
        tx.create(node, data, acl=self.acl)
        fenced, created = zk.wait(tx.commit_async(), self.timeout)
        if isinstance(fenced, NoNodeError):  # the fence: leadership is lost
            raise fenced
        error = created if isinstance(created, Exception) else None
        if isinstance(error, NodeExistsError):
            self.load()
            return False
        if error is not None:
            raise error
        self.claims[claim.path] = claim
        log.info("%s is now claimed by namespace %s (ServiceRegistry %s)", claim.path, claim.namespace, claim.name)
        return True

    def release_unwanted(self, wanted: set[tuple[str, str]], fence: str, release_after: float) -> list[str]:
        """Deletes the claims that no registry of their namespace has wanted for `release_after`
        seconds; `wanted` is every (namespace, path) some live registry asks for. Returns the
        released paths."""
        now, released = time.monotonic(), []
        for path, claim in list(self.claims.items()):
            if (claim.namespace, path) in wanted:
                self._unwanted.pop(path, None)
                continue
            since = self._unwanted.setdefault(path, now)
            if now - since < release_after:
                continue
            tx = self.client.transaction()
            tx.check(fence, -1)
            tx.delete(f"{self.folder}/{node_name(path)}")
            fenced, deleted = zk.wait(tx.commit_async(), self.timeout)
            if isinstance(fenced, NoNodeError):  # the fence: leadership is lost
                raise fenced
            if isinstance(deleted, Exception) and not isinstance(deleted, NoNodeError | RolledBackError):
                raise deleted
            self.claims.pop(path, None)
            self._unwanted.pop(path, None)
            released.append(path)
            log.info("claim of %s by namespace %s released: unwanted for %.0f s", path, claim.namespace, now - since)
        return released

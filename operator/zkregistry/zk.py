"""The ZooKeeper connection: client, authentication, TLS, and the ACL of the znodes we create."""

from __future__ import annotations

import selectors

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, KazooException, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError, SequentialThreadingHandler
from kazoo.handlers.utils import selector_select
from kazoo.retry import KazooRetry
from kazoo.security import ACL, Id, Permissions, make_digest_acl

from zkregistry.config import Settings


def acl(settings: Settings) -> list[ACL] | None:
    """With digest credentials, only they may change our znodes and the reader may read them;
    without, ZooKeeper's open ACL (None)."""
    if not settings.zk_digest:
        return None
    user, password = settings.zk_digest.split(":", 1)
    scheme, identity = settings.zk_reader.split(":", 1)
    return [make_digest_acl(user, password, all=True), ACL(Permissions.READ, Id(scheme, identity))]


def ancestor_acl(settings: Settings) -> list[ACL] | None:
    """The ancestors of service paths that we create (/services): as `acl`, and anyone may create
    under them, as under any ZooKeeper path nobody restricted: other services live there too."""
    own = acl(settings)
    return None if own is None else [*own, ACL(Permissions.CREATE, Id("world", "anyone"))]


def service_acl(settings: Settings, principals: tuple[str, ...] = ()) -> list[ACL] | None:
    """A service path: deny by default. Only our identity may create, delete or change members
    under it (`acl`); the external `principals` ("scheme:id", granted by a RegistryPolicy with
    allowExternalMembers) may also create members of their own. Without `--zk-digest` there is
    no identity of ours to restrict it to: ZooKeeper's open ACL (None)."""
    own = acl(settings)
    if own is None:
        return None
    extra = [ACL(Permissions.CREATE, Id(*p.split(":", 1))) for p in principals if ":" in p]
    return [*own, *extra]


def security_options(
    digest: str = "",
    tls: bool = False,
    insecure: bool = False,
    ca_file: str = "",
    cert_file: str = "",
    key_file: str = "",
) -> dict:
    """KazooClient options for digest authentication and TLS. TLS verifies the server's
    certificate (against `ca_file`, else the system's CAs) and that it names the host dialled,
    unless `insecure`, the explicit opt-out."""
    return {
        "auth_data": [("digest", digest)] if digest else None,
        "use_ssl": tls,
        "ca": ca_file or None,
        "certfile": cert_file or None,
        "keyfile": key_file or None,
        "verify_certs": not insecure,
        "check_hostname": tls and not insecure,
    }


class _Poll:
    """The `selectors` module as kazoo's `selector_select` uses it, with poll(2) as the default."""

    EVENT_READ, EVENT_WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
    DefaultSelector = selectors.PollSelector


class Handler(SequentialThreadingHandler):
    """kazoo's threading handler, waiting with poll(2). kazoo's own makes and closes an epoll
    instance at every wait, and its connection waits before it sends each request and before it
    reads each reply: the setup and teardown were 18 % of a leader's samples in a burst (bench
    2026-11-30-3). Same function, same semantics, one system call per wait."""

    def select(self, *args, **kwargs):
        return selector_select(*args, selectors_module=_Poll, **kwargs)


def client(settings: Settings) -> KazooClient:
    """A client that is not started; it retries connecting forever."""
    return KazooClient(
        hosts=settings.connection_string,
        handler=Handler(),
        timeout=settings.session_timeout,
        connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=2.0),
        command_retry=KazooRetry(max_tries=3, delay=0.1, max_delay=1.0),
        **security_options(
            settings.zk_digest,
            settings.zk_tls,
            settings.zk_tls_insecure,
            settings.zk_ca_file,
            settings.zk_cert_file,
            settings.zk_key_file,
        ),
    )


#: What a bounded ZooKeeper call may raise when ZooKeeper fails or does not answer in time.
ERRORS = (KazooException, KazooTimeoutError)
#: Of those, the ones that say the connection (not one request) failed.
LOST = (ConnectionLoss, SessionExpiredError, KazooTimeoutError)


def wait(result, timeout: float):
    """The value of a kazoo async `result`, waiting at most `timeout` seconds: a blocking call that
    can never hang on a connection that does not answer. Raises kazoo's exceptions, or the
    handler's timeout exception (KazooTimeoutError) when the time is up."""
    return result.get(timeout=timeout)

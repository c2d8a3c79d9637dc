"""The ZooKeeper connection: client, authentication, TLS, and the ACL of the znodes we create."""

from __future__ import annotations

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, KazooException, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError
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


def parent_acl(settings: Settings) -> list[ACL] | None:
    """The service paths that we create: as `acl`, except that anyone may add a member of its
    own (a service outside Kubernetes registering itself), which it then owns."""
    own = acl(settings)
    return None if own is None else [*own, ACL(Permissions.CREATE, Id("world", "anyone"))]


def client(settings: Settings) -> KazooClient:
    """A client that is not started; it retries connecting forever."""
    return KazooClient(
        hosts=settings.connection_string,
        timeout=settings.session_timeout,
        auth_data=[("digest", settings.zk_digest)] if settings.zk_digest else None,
        use_ssl=settings.zk_tls,
        ca=settings.zk_ca_file or None,
        certfile=settings.zk_cert_file or None,
        keyfile=settings.zk_key_file or None,
        verify_certs=bool(settings.zk_ca_file),
        connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=2.0),
        command_retry=KazooRetry(max_tries=3, delay=0.1, max_delay=1.0),
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

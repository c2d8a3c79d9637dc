"""The operator's image run as containers, without a container engine: buildah unpacks the image
(from the OCI archive that `make image` writes), and runc runs it as the kubelet's runtime would
run the pod template of deploy/: the image's own entrypoint, user and environment, a read-only
root file system, no capabilities, a memory-backed /tmp, and the ServiceAccount's token where
in-cluster configuration reads it. The network is the host's, so a container reaches the local
control plane and ensemble on 127.0.0.1.

    image = Image.load(archive, cache)             # buildah pull oci-archive:...
    with image.root("replicas") as root:           # buildah from + mount: the unpacked root
        spec = runtime_spec(root, image.config, args=[...], env={...}, mounts=[...])
        container = Container("zkr-0", bundle_dir, state_dir, spec)
        process = container.start(log)             # runc run, in the foreground
        container.signal(signal.SIGTERM)

Why runc and not `buildah run`: buildah 1.28 (Debian 12) has no read-only root, and its chroot
isolation writes /run/.containerenv into the root on every run; with the root read-only it fails
before the command starts. crun, buildah's default runtime, refuses this machine's hybrid cgroups.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Where in-cluster configuration (client-go, the Python client, kopf) looks for the ServiceAccount.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def buildah_command(cache: Path) -> list[str]:
    """buildah on the storage that tools/image.sh builds into: $cache/containers, vfs."""
    return [
        "buildah",
        "--root", str(cache / "containers" / "storage"),
        "--runroot", str(cache / "containers" / "run"),
        "--storage-driver", "vfs",
    ]


def run(argv: Sequence[str], timeout: float = 600) -> str:
    """Runs a command and returns its stdout; RuntimeError with its stderr if it fails."""
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    return result.stdout


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an OCI image's config that say how to run it."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    user: str = ""
    workdir: str = ""
    exposed_ports: tuple[str, ...] = ()

    @classmethod
    def from_oci(cls, config: Mapping) -> ImageConfig:
        """From the `config` object of an OCI image configuration (what `buildah inspect` shows as OCIv1)."""
        return cls(
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
            env=tuple(tuple(e.split("=", 1)) for e in config.get("Env") or () if "=" in e),
            user=config.get("User") or "",
            workdir=config.get("WorkingDir") or "",
            exposed_ports=tuple(sorted(config.get("ExposedPorts") or {})),
        )


def resolve_user(user: str, root: Path) -> tuple[int, int]:
    """(uid, gid) of an image's USER ("uid[:gid]" or names), looked up in the image's own
    /etc/passwd and /etc/group as a runtime does; an empty USER is root."""
    name, _, group = user.partition(":")

    def lookup(table: str, key: str) -> list[str] | None:
        """The fields of `key`'s line in /etc/passwd (name:x:uid:gid:...) or /etc/group (name:x:gid:...)."""
        with contextlib.suppress(OSError):
            for line in (root / "etc" / table).read_text().splitlines():
                fields = line.split(":")
                if len(fields) >= 4 and fields[0] == key:
                    return fields
        return None

    if not name:
        uid, gid = 0, 0
    elif name.isdigit():
        uid = int(name)
        gid = next((g for u, g in _passwd(root) if u == uid), uid)
    else:
        entry = lookup("passwd", name)
        if entry is None:
            raise ValueError(f"user {name!r} is not in the image's /etc/passwd")
        uid, gid = int(entry[2]), int(entry[3])
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            entry = lookup("group", group)
            if entry is None:
                raise ValueError(f"group {group!r} is not in the image's /etc/group")
            gid = int(entry[2])
    return uid, gid


def _passwd(root: Path) -> list[tuple[int, int]]:
    with contextlib.suppress(OSError):
        return [
            (int(f[2]), int(f[3]))
            for f in (line.split(":") for line in (root / "etc" / "passwd").read_text().splitlines())
            if len(f) >= 4 and f[2].isdigit() and f[3].isdigit()
        ]
    return []


def shells(root: Path) -> list[str]:
    """The image's shells, as /etc/shells lists them (each path that exists in the image)."""
    try:
        listed = (root / "etc" / "shells").read_text().splitlines()
    except OSError:
        return []
    return [p for p in (line.strip() for line in listed) if p.startswith("/") and (root / p.lstrip("/")).exists()]


@dataclass(frozen=True)
class Mount:
    destination: str
    source: str
    read_only: bool = True

    def spec(self) -> dict:
        return {
            "destination": self.destination,
            "type": "bind",
            "source": self.source,
            "options": ["rbind", "nosuid", "nodev", "ro" if self.read_only else "rw"],
        }


def runtime_spec(
    root: Path,
    config: ImageConfig,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    command: Sequence[str] = (),
    mounts: Sequence[Mount] = (),
    masked: Sequence[str] = (),
    hostname: str = "zkregistry",
    memory_limit: int | None = None,
    tmp_size: str = "16m",
) -> dict:
    """An OCI runtime spec that runs the image at `root` as deploy/deployment.yaml's pod does.

    - the process: the image's ENTRYPOINT (or `command`, as Kubernetes' `command:` replaces it)
      followed by `args` (or else the image's CMD), as the image's USER, in its WORKDIR, with its
      ENV and then `env` (which wins);
    - readOnlyRootFilesystem, allowPrivilegeEscalation false (no_new_privs), capabilities dropped,
      a 16 MiB memory-backed /tmp (deploy/'s emptyDir), `memory_limit` bytes of memory;
    - `masked`: paths hidden behind /dev/null, as runc masks /proc/kcore (to prove, by masking
      the shells, that nothing at run time starts one);
    - the host's network: no network namespace, so 127.0.0.1 is the host's.
    """
    uid, gid = resolve_user(config.user, root)
    environment = dict(config.env)
    environment.update(env or {})
    sets = ("bounding", "effective", "permitted", "inheritable", "ambient")
    no_capabilities: dict[str, list[str]] = {s: [] for s in sets}
    spec: dict = {
        "ociVersion": "1.0.2",
        "hostname": hostname,
        "root": {"path": str(root), "readonly": True},
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid, "additionalGids": [gid]},
            "args": [*(command or config.entrypoint), *(args or ([] if command else config.cmd))],
            "env": [f"{k}={v}" for k, v in environment.items()],
            "cwd": config.workdir or "/",
            "capabilities": no_capabilities,
            "noNewPrivileges": True,
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777", f"size={tmp_size}"]},
            *(m.spec() for m in mounts),
        ],
        "linux": {
            # No "network" namespace: the host's network, as `hostNetwork` would give.
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", *masked],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    if memory_limit is not None:
        spec["linux"]["resources"] = {"memory": {"limit": memory_limit}}
    return spec


@dataclass
class Image:
    """An image in buildah's storage, loaded from an OCI archive."""

    buildah: list[str]
    id: str
    config: ImageConfig
    oci_config: dict = field(repr=False)

    @classmethod
    def load(cls, archive: Path, cache: Path) -> Image:
        """Loads the archive into the storage under `cache` (a no-op for layers already there)."""
        buildah = buildah_command(cache)
        image_id = run([*buildah, "pull", "--quiet", f"oci-archive:{archive}"]).strip().splitlines()[-1]
        inspected = json.loads(run([*buildah, "inspect", "--type", "image", image_id]))
        oci = inspected["OCIv1"]
        return cls(buildah, image_id, ImageConfig.from_oci(oci.get("config") or {}), oci)

    @contextlib.contextmanager
    def root(self, purpose: str = "run") -> Iterator[Path]:
        """The image's file system, unpacked into a working container and mounted; removed after.
        Containers that share it see it read-only (runtime_spec), so one copy serves them all."""
        name = f"zkregistry-{purpose}-{uuid.uuid4().hex[:8]}"
        run([*self.buildah, "from", "--quiet", "--pull=never", "--name", name, self.id])
        try:
            yield Path(run([*self.buildah, "mount", name]).strip())
        finally:
            with contextlib.suppress(RuntimeError):
                run([*self.buildah, "umount", name])
            run([*self.buildah, "rm", name])


@dataclass
class Container:
    """One container run by runc in the foreground: runc's exit status is the container's, and
    runc passes on the signals it gets. `signal` goes to the container's first process directly
    (`runc kill`), as the kubelet's runtime sends SIGTERM, so that SIGKILL and SIGSTOP reach it too."""

    id: str
    bundle: Path
    state: Path  # runc's --root: its record of the containers it runs
    spec: dict
    process: subprocess.Popen | None = None

    def runc(self, *args: str) -> list[str]:
        return ["runc", "--root", str(self.state), *args]

    def start(self, log: Path) -> subprocess.Popen:
        """Starts the container in its own session, with its output appended to `log`."""
        self.bundle.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        (self.bundle / "config.json").write_text(json.dumps(self.spec, indent=1))
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                self.runc("run", "--bundle", str(self.bundle), self.id),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        return self.process

    def state_of(self) -> dict | None:
        """runc's state of the container (status, pid), or None once it is gone."""
        result = subprocess.run(self.runc("state", self.id), capture_output=True, text=True)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def init_pid(self) -> int | None:
        """The host's pid of the container's first process (the entrypoint), while it runs."""
        state = self.state_of()
        return state["pid"] if state and state.get("status") == "running" else None

    def signal(self, sig: signal.Signals) -> bool:
        """Sends `sig` to the container's first process; False if the container is gone."""
        result = subprocess.run(self.runc("kill", self.id, str(int(sig))), capture_output=True, text=True)
        return result.returncode == 0

    def remove(self) -> None:
        """Kills and deletes the container if it is still there (after a test that failed)."""
        subprocess.run(self.runc("delete", "--force", self.id), capture_output=True, text=True)


def runc_available() -> str | None:
    """Why runc cannot run containers here, or None if it can (runc installed, and root)."""
    if os.geteuid() != 0:
        return "runc needs root here (no rootless setup)"
    try:
        subprocess.run(["runc", "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        return f"runc does not run: {error} (tools/image.sh installs it)"
    return None

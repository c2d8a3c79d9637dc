"""A real Apache ZooKeeper ensemble on loopback, one JVM per server, each stoppable on its own.

    ensemble = Ensemble(workdir, jars)      # jars: the folder tools/zookeeper.sh prints
    ensemble.start()
    ensemble.connection_string              # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
    ensemble.stop_server(2); ensemble.start_server(2)
    ensemble.pause_server(1); ensemble.resume_server(1)
    ensemble.stop()

Its state (ports, pids) lives in `<workdir>/ensemble.json`, so another process can stop it. The
tick is 250 ms, so sessions may be as short as 0.5 s, which fault tests use.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from zkregistry.devenv.processes import alive, free_ports, spawn, terminate, wait_for

TICK_MS = 250


@dataclass
class Server:
    myid: int
    client_port: int
    peer_port: int
    election_port: int
    secure_port: int = 0
    pid: int = 0


@dataclass
class Ensemble:
    workdir: Path
    jars: Path
    size: int = 3
    servers: list[Server] = field(default_factory=list)
    tls: dict | None = None  # keystore/truststore settings for a secure client port

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.jars = Path(self.jars)
        state = self.workdir / "ensemble.json"
        if state.exists() and not self.servers:
            saved = json.loads(state.read_text())
            self.servers = [Server(**s) for s in saved["servers"]]
            self.tls = saved.get("tls")

    @property
    def connection_string(self) -> str:
        return ",".join(f"127.0.0.1:{s.client_port}" for s in self.servers)

    @property
    def secure_connection_string(self) -> str:
        return ",".join(f"127.0.0.1:{s.secure_port}" for s in self.servers)

    def start(self) -> None:
        """Starts every server (allocating ports the first time) and waits for a quorum."""
        if not self.servers:
            ports = free_ports(self.size * 4)
            self.servers = [
                Server(i + 1, *ports[i * 4 : i * 4 + 3], secure_port=ports[i * 4 + 3] if self.tls else 0)
                for i in range(self.size)
            ]
        for server in self.servers:
            self._write_config(server)
        for server in self.servers:
            if not (server.pid and alive(server.pid)):
                self._launch(server)
        self._save()
        for server in self.servers:
            self.wait_serving(server.myid)

    def _dir(self, server: Server) -> Path:
        return self.workdir / f"zk{server.myid}"

    def _write_config(self, server: Server) -> None:
        data = self._dir(server) / "data"
        data.mkdir(parents=True, exist_ok=True)
        (data / "myid").write_text(f"{server.myid}\n")
        lines = [
            f"tickTime={TICK_MS}",
            "initLimit=40",
            "syncLimit=20",
            f"dataDir={data}",
            f"clientPort={server.client_port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "standaloneEnabled=false",
            "maxSessionTimeout=120000",
            "globalOutstandingLimit=10000",
        ]
        lines += [f"server.{s.myid}=127.0.0.1:{s.peer_port}:{s.election_port}" for s in self.servers]
        if self.tls:
            lines += [
                f"secureClientPort={server.secure_port}",
                "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
                f"ssl.keyStore.location={self.tls['keystore']}",
                f"ssl.keyStore.password={self.tls['password']}",
                f"ssl.trustStore.location={self.tls['truststore']}",
                f"ssl.trustStore.password={self.tls['password']}",
                "ssl.clientAuth=none",
            ]
        (self._dir(server) / "zoo.cfg").write_text("\n".join(lines) + "\n")

    def _launch(self, server: Server) -> None:
        directory = self._dir(server)
        java = ["java", "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
        process = spawn(
            [
                *java,
                f"-Dzookeeper.log.dir={directory}",
                "-Dzookeeper.jmx.log4j.disable=true",
                "-cp",
                f"{self.jars}/*",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(directory / "zoo.cfg"),
            ],
            directory / "server.log",
        )
        server.pid = process.pid
        self._save()

    def _save(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        state = {"servers": [asdict(s) for s in self.servers], "tls": self.tls}
        (self.workdir / "ensemble.json").write_text(json.dumps(state, indent=1))

    def server(self, myid: int) -> Server:
        return self.servers[myid - 1]

    def mode(self, myid: int) -> str | None:
        """'leader' or 'follower' while the server serves; None otherwise (ZooKeeper's srvr)."""
        try:
            with socket.create_connection(("127.0.0.1", self.server(myid).client_port), timeout=1) as s:
                s.sendall(b"srvr")
                reply = b""
                while chunk := s.recv(4096):
                    reply += chunk
        except OSError:
            return None
        for line in reply.decode(errors="replace").splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def wait_serving(self, myid: int, timeout: float = 60) -> None:
        def serving() -> bool:
            if not alive(self.server(myid).pid):
                log = (self._dir(self.server(myid)) / "server.log").read_text(errors="replace")
                raise RuntimeError(f"ZooKeeper server {myid} exited:\n{log[-2000:]}")
            return self.mode(myid) in ("leader", "follower")

        wait_for(serving, timeout, f"ZooKeeper server {myid}", retry_errors=False)

    def stop_server(self, myid: int) -> None:
        server = self.server(myid)
        if server.pid:
            terminate(server.pid)
            server.pid = 0
            self._save()

    def start_server(self, myid: int, wait: bool = True) -> None:
        server = self.server(myid)
        if not (server.pid and alive(server.pid)):
            self._launch(server)
        if wait:
            self.wait_serving(myid)

    def pause_server(self, myid: int) -> None:
        os.kill(self.server(myid).pid, signal.SIGSTOP)

    def resume_server(self, myid: int) -> None:
        os.kill(self.server(myid).pid, signal.SIGCONT)

    def running(self) -> list[int]:
        return [s.myid for s in self.servers if s.pid and alive(s.pid)]

    def stop(self) -> None:
        for server in self.servers:
            self.stop_server(server.myid)

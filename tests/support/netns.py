"""A distant machine for tests: a network namespace of the test's own, joined to this one by a veth
pair with addresses the test picks (10.213.x.0/30), and TCP forwarders on this end of the link to
services that listen on loopback. A process started in the namespace reaches those services only
over the link; `cut()` takes the link down, `restore()` brings it back.

Needs root (or CAP_NET_ADMIN) and `ip`; `NetworkLink.unavailable()` says why not when it cannot.
"""
import ipaddress
import random
import shutil
import socket
import subprocess
import threading
import uuid


def _ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {result.stderr.strip()}")
    return result


class Forwarder:
    """Accepts on (host, port) and copies bytes both ways to (target_host, target_port)."""

    def __init__(self, host: str, target: tuple[str, int]):
        self.target = target
        self.server = socket.create_server((host, 0))
        self.port = self.server.getsockname()[1]
        self.closed = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """Stops accepting and ends every forwarded connection (the far end may be gone already)."""
        self.closed = True
        self.server.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class NetworkLink:
    def __init__(self):
        suffix = uuid.uuid4().hex[:6]
        self.namespace = f"wgc-{suffix}"
        self.host_end, self.far_end = f"wgch{suffix}", f"wgcn{suffix}"
        self.network = self._free_network()
        hosts = list(self.network.hosts())
        self.host_address, self.far_address = str(hosts[0]), str(hosts[1])
        self.forwarders: list[Forwarder] = []

    @staticmethod
    def unavailable() -> str | None:
        """Why a namespace cannot be made here, or None."""
        if shutil.which("ip") is None:
            return "the `ip` command (iproute2) is not installed"
        probe = f"wgc-probe-{uuid.uuid4().hex[:6]}"
        result = _ip("netns", "add", probe, check=False)
        if result.returncode != 0:
            return f"the kernel or the container forbids network namespaces here: {result.stderr.strip()}"
        _ip("netns", "del", probe, check=False)
        return None

    @staticmethod
    def _free_network() -> ipaddress.IPv4Network:
        used = _ip("-4", "addr").stdout
        while True:
            network = ipaddress.ip_network(f"10.213.{random.randrange(256)}.{4 * random.randrange(64)}/30")
            if str(network.network_address).rsplit(".", 1)[0] + "." not in used:
                return network

    def open(self) -> "NetworkLink":
        prefix = self.network.prefixlen
        _ip("netns", "add", self.namespace)
        try:
            _ip("link", "add", self.host_end, "type", "veth", "peer", "name", self.far_end)
            _ip("link", "set", self.far_end, "netns", self.namespace)
            _ip("addr", "add", f"{self.host_address}/{prefix}", "dev", self.host_end)
            _ip("link", "set", self.host_end, "up")
            _ip("-n", self.namespace, "addr", "add", f"{self.far_address}/{prefix}", "dev", self.far_end)
            _ip("-n", self.namespace, "link", "set", self.far_end, "up")
            _ip("-n", self.namespace, "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise
        return self

    def forward(self, target: tuple[str, int]) -> int:
        """A port on this end of the link that leads to `target`; returns it."""
        forwarder = Forwarder(self.host_address, target)
        self.forwarders.append(forwarder)
        return forwarder.port

    def prefix(self) -> list[str]:
        """Put before a command to run it in the namespace."""
        return ["ip", "netns", "exec", self.namespace]

    def cut(self) -> None:
        _ip("link", "set", self.host_end, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_end, "up")

    def close(self) -> None:
        for forwarder in self.forwarders:
            forwarder.close()
        _ip("link", "del", self.host_end, check=False)
        _ip("netns", "del", self.namespace, check=False)

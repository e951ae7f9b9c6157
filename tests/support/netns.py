"""Several hosts on this machine, in network namespaces, with links a test can cut and restore.

A deployment spreads over hosts: app servers on some, the broker on another, clients
elsewhere. :class:`Network` builds that with ``ip netns`` and veth pairs, all on this machine:

```
                 front switch 10.231.F.0/24                  back switch 10.231.B.0/24
  test process ------ .1 ------+                  +------ .1 ------ test process
  (clients)                    +--- app1 .11 -----+
                               +--- app2 .12 -----+------ .2 ------ broker host
```

Both switches are bridges inside a namespace of their own, so nothing passes through this
machine's own firewall or routing. The test process reaches every host through its own two
addresses on the switches; the hosts have no route anywhere else, so no packet leaves the
machine. :meth:`Network.cut` takes an app host's port on the back switch down: the host
keeps its clients and loses the broker, the way a partition between racks does; packets are
dropped, not refused, so TCP connections hang rather than fail.

Everything is undone by :meth:`Network.close`: processes started through :meth:`Host.launcher`
are the caller's to stop by PID first; then the namespaces are deleted, which deletes every
interface in them, and the test process's own two interfaces are deleted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

#: Third octets of the switches are picked in this range (two per network).
OCTETS = range(40, 240, 2)


class NamespacesUnavailable(RuntimeError):
    """This machine cannot create network namespaces (not root, no ``ip``, or forbidden)."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


@dataclass
class Host:
    """One host: a network namespace and its addresses on the two switches."""

    name: str
    namespace: str
    front: str | None  # address clients reach it at
    back: str | None  # address it reaches (or is reached at) the broker with

    @property
    def launcher(self) -> list[str]:
        """The command prefix that runs a program on this host (``ip netns exec NAME``)."""
        return ["ip", "netns", "exec", self.namespace]

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.launcher, *command], capture_output=True, text=True, check=True, timeout=20
        )


class Network:
    """Two app hosts and a broker host, joined to the test process by a front and a back switch."""

    def __init__(self, apps: int = 2) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.apps = apps
        self.namespaces: list[str] = []
        self.root_links: list[str] = []
        front_octet = self._free_octet()
        self.front_net = f"10.231.{front_octet}"
        self.back_net = f"10.231.{front_octet + 1}"
        self.switch = self._namespace("switch")
        self.broker = Host("broker", self._namespace("broker"), None, f"{self.back_net}.2")
        self.app_hosts = [
            Host(
                f"app{index}",
                self._namespace(f"app{index}"),
                f"{self.front_net}.{10 + index}",
                f"{self.back_net}.{10 + index}",
            )
            for index in range(1, apps + 1)
        ]
        #: The test process's own addresses on the two switches.
        self.root_front = f"{self.front_net}.1"
        self.root_back = f"{self.back_net}.1"

    # -- building ----------------------------------------------------------------------------

    @staticmethod
    def _free_octet() -> int:
        used = ip("-4", "-o", "addr", "show").stdout
        start = OCTETS[os.getpid() % len(OCTETS)]
        for offset in range(len(OCTETS)):
            octet = OCTETS[(OCTETS.index(start) + offset) % len(OCTETS)]
            if f"10.231.{octet}." not in used and f"10.231.{octet + 1}." not in used:
                return octet
        raise NamespacesUnavailable("no free 10.231.x.0/24 pair for the test network")

    def _namespace(self, role: str) -> str:
        return f"fs-{self.tag}-{role}"

    def build(self) -> Network:
        try:
            for namespace in [self.switch, self.broker.namespace] + [
                h.namespace for h in self.app_hosts
            ]:
                ip("netns", "add", namespace)
                self.namespaces.append(namespace)
                ip("-n", namespace, "link", "set", "lo", "up")
            for bridge in ("front", "back"):
                ip("-n", self.switch, "link", "add", "name", bridge, "type", "bridge")
                ip("-n", self.switch, "link", "set", bridge, "up")
            self._attach(self.broker.namespace, "eth0", "broker-b", "back", self.broker.back)
            for host in self.app_hosts:
                self._attach(host.namespace, "eth0", f"{host.name}-b", "back", host.back)
                self._attach(host.namespace, "eth1", f"{host.name}-f", "front", host.front)
            for bridge, address in (("front", self.root_front), ("back", self.root_back)):
                link = f"fs{self.tag}{bridge[0]}"
                ip("link", "add", "name", link, "type", "veth", "peer", "name", f"root-{bridge[0]}",
                   "netns", self.switch)  # fmt: skip
                self.root_links.append(link)
                ip("-n", self.switch, "link", "set", f"root-{bridge[0]}", "master", bridge)
                ip("-n", self.switch, "link", "set", f"root-{bridge[0]}", "up")
                ip("addr", "add", f"{address}/24", "dev", link)
                ip("link", "set", link, "up")
        except BaseException:
            self.close()
            raise
        return self

    def _attach(
        self, namespace: str, inner: str, port: str, bridge: str, address: str | None
    ) -> None:
        """A veth from ``namespace`` (as ``inner``, with ``address``) to a port of ``bridge``."""
        ip("-n", self.switch, "link", "add", "name", port, "type", "veth", "peer", "name", inner,
           "netns", namespace)  # fmt: skip
        ip("-n", self.switch, "link", "set", port, "master", bridge)
        ip("-n", self.switch, "link", "set", port, "up")
        ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inner)
        ip("-n", namespace, "link", "set", inner, "up")

    # -- partitions --------------------------------------------------------------------------

    def cut(self, host: Host) -> None:
        """Cut ``host`` off the back switch: it keeps its clients and loses the broker."""
        ip("-n", self.switch, "link", "set", f"{host.name}-b", "down")

    def restore(self, host: Host) -> None:
        ip("-n", self.switch, "link", "set", f"{host.name}-b", "up")

    # -- teardown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Delete every namespace (and so every interface in it) and this process's links."""
        for namespace in reversed(self.namespaces):
            ip("netns", "del", namespace, check=False)
        self.namespaces.clear()
        for link in self.root_links:
            if ip("link", "show", link, check=False).returncode == 0:
                ip("link", "del", link, check=False)
        self.root_links.clear()


def unavailable_reason() -> str | None:
    """Why namespaces cannot be built here, or ``None`` when they can."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"fs-probe-{uuid.uuid4().hex[:6]}"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    try:
        pair = ip(
            "-n",
            probe,
            "link",
            "add",
            "name",
            "pa",
            "type",
            "veth",
            "peer",
            "name",
            "pb",
            check=False,
        )
        if pair.returncode != 0:
            return f"veth pairs cannot be created: {pair.stderr.strip()}"
        bridge = ip("-n", probe, "link", "add", "name", "pbr", "type", "bridge", check=False)
        if bridge.returncode != 0:
            return f"bridges cannot be created: {bridge.stderr.strip()}"
    finally:
        ip("netns", "del", probe, check=False)
    return None


@contextmanager
def network(apps: int = 2) -> Iterator[Network]:
    """A built :class:`Network`, or the test skipped with the reason it cannot be built."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"hosts in network namespaces are not available: {reason}")
    built = Network(apps).build()
    try:
        yield built
    finally:
        built.close()

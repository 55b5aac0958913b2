"""Two hosts behind one floating IP, in network namespaces: the keepalived configuration of
docs/load-balancer.md (compose/keepalived/keepalived.conf, filled as the page says) moves the
address to the host whose stack still answers.

Each "host" is a network namespace on one bridge with its own keepalived (Debian's package, the
real VRRP daemon) and, in place of the whole stack, a small HTTP server answering its own name on
:80, which is what the health script asks of the stack. A client namespace polls the floating IP.
What this shows: the configuration is valid, the health script gives the address up when the
host's stack stops answering and takes it back when it answers again, and the backup takes over
when the master host dies (keepalived SIGKILLed: no more adverts). What it does not: the stack
itself on two machines, and what happens to a browser's replica (docs/load-balancer.md).
Fails without root, `ip` or keepalived (`make bootstrap` installs keepalived).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.stack import REPO, TEST_PROJECT_PREFIX, wait_for

TEMPLATE = REPO / "compose" / "keepalived" / "keepalived.conf"
SUBNET = "10.231.77"
VIP = f"{SUBNET}.100"
SERVER = (
    "import http.server, sys\n"
    "name = sys.argv[1].encode()\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(name)))\n"
    "        self.end_headers(); self.wfile.write(name)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', 80), H).serve_forever()\n"
)

needs = [
    (os.geteuid() == 0, "needs root (network namespaces)"),
    (shutil.which("ip") is not None, "needs iproute2"),
    (Path("/usr/sbin/keepalived").exists(), "needs keepalived (apt-get install keepalived)"),
    (shutil.which("curl") is not None, "needs curl (the health script)"),
]
pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _tools_present() -> None:
    """A missing tool fails the test, never skips it (`make bootstrap` installs keepalived)."""
    missing = [why for ok, why in needs if not ok]
    if missing:
        pytest.fail("; ".join(missing))


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@dataclass
class Host:
    name: str  # its network namespace
    address: str
    state: str
    priority: int
    workdir: Path
    server: subprocess.Popen[bytes] | None = None
    keepalived: subprocess.Popen[bytes] | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *args],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / f"{self.name}.log").open("ab"),
        )
        self.procs.append(proc)
        return proc

    def start_server(self) -> None:
        self.server = self.run(sys.executable, "-c", SERVER, self.name)

    def stop_server(self) -> None:
        assert self.server is not None
        self.server.kill()
        self.server.wait(5)

    def start_keepalived(self, password: str) -> None:
        conf = self.workdir / f"{self.name}.conf"
        text = TEMPLATE.read_text()
        for key, value in {
            "@CHECK_URL@": "http://127.0.0.1/healthz",
            "@STATE@": self.state,
            "@INTERFACE@": "eth0",
            "@PRIORITY@": str(self.priority),
            "@PASSWORD@": password,
            "@VIP@": f"{VIP}/24",
        }.items():
            text = text.replace(key, value)
        conf.write_text(text)
        pids = {k: str(self.workdir / f"{self.name}-{k}.pid") for k in ("main", "vrrp", "check")}
        self.keepalived = self.run(
            "/usr/sbin/keepalived",
            "--dont-fork",
            "--log-console",
            "--no-syslog",
            "--vrrp",
            f"--use-file={conf}",
            f"--pid={pids['main']}",
            f"--vrrp_pid={pids['vrrp']}",
            f"--checkers_pid={pids['check']}",
        )

    def die(self) -> None:
        """The host is gone: its link first (a keepalived told to stop would still send a last
        advert with priority 0, a graceful handover), then its processes."""
        sh("ip", "-n", self.name, "link", "set", "eth0", "down")
        self.stop_all()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(5)


@pytest.fixture
def two_hosts(tmp_path: Path) -> Iterator[tuple[Host, Host, str]]:
    tag = f"{TEST_PROJECT_PREFIX}-{secrets.token_hex(2)}"
    lan, client = f"{tag}-lan", f"{tag}-cl"
    hosts = [
        Host(f"{tag}-a", f"{SUBNET}.1", "MASTER", 150, tmp_path),
        Host(f"{tag}-b", f"{SUBNET}.2", "BACKUP", 100, tmp_path),
    ]
    made: list[str] = []
    try:
        for ns in (lan, client, *(h.name for h in hosts)):
            sh("ip", "netns", "add", ns)
            made.append(ns)
        sh("ip", "-n", lan, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", lan, "link", "set", "br0", "up")
        for ns, address in [(client, f"{SUBNET}.3"), *((h.name, h.address) for h in hosts)]:
            inside, peer = (f"hlb{secrets.token_hex(3)}{side}" for side in "ip")
            sh("ip", "link", "add", inside, "type", "veth", "peer", "name", peer)
            sh("ip", "link", "set", inside, "netns", ns)
            sh("ip", "-n", ns, "link", "set", inside, "name", "eth0")
            sh("ip", "link", "set", peer, "netns", lan)
            sh("ip", "-n", lan, "link", "set", peer, "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        password = secrets.token_hex(4)
        for host in hosts:
            host.start_server()
            host.start_keepalived(password)
        yield hosts[0], hosts[1], client
    finally:
        for host in hosts:
            host.stop_all()
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def answer(client: str) -> str:
    """Who answers on the floating IP now (a host's name), or '' (no answer within 0.5 s)."""
    done = subprocess.run(
        ["ip", "netns", "exec", client, "curl", "-fsS", "--max-time", "0.5", f"http://{VIP}/"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def moves_to(client: str, host: Host, within: float) -> None:
    wait_for(lambda: answer(client) == host.name, within, f"the floating IP on {host.name}", 0.2)


def test_the_floating_ip_follows_the_host_whose_stack_answers(
    two_hosts: tuple[Host, Host, str],
) -> None:
    a, b, client = two_hosts
    moves_to(client, a, within=20)  # the master (higher priority) takes it at start
    a.stop_server()  # the stack on A stops answering: its health script fails twice
    moves_to(client, b, within=10)
    a.start_server()  # A answers again, and with the higher priority takes the address back
    moves_to(client, a, within=10)
    a.die()
    started = time.monotonic()
    moves_to(client, b, within=10)
    print(f"backup answered {time.monotonic() - started:.1f} s after the master died")

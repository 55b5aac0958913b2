"""A replica's 503 whose body lags its headers, through the real Traefik: failover, then retry.

The failover service (traefik/dynamic/failover.yml) holds back the 503 it hands to the fallback
but passes Flush() straight through, and so does the retry middleware's writer. Go's
httputil.ReverseProxy flushes when a body lags its headers by the service's
responseForwarding.flushInterval (100 ms by default), and a flush before any header is written
commits an implicit `200 OK`: the fallback's 503 that follows is ignored. docker-compose.ha.yml
therefore sets a long flush interval on the sticky services (docs/failover.md).

Here the real Traefik image runs our own dynamic files (retry and transports from
traefik/dynamic/middlewares.yml, failover.yml with the Docker provider's services swapped for
file-provider ones) in front of a stdlib backend: its main port sends `503` headers with a
Content-Length and the body BODY_DELAY_S later; its fallback port answers 503 + Retry-After at
once. With the compose file's flush interval every client gets the fallback's 503; with
Traefik's default the client gets a 200, which is why the setting exists.
"""

from __future__ import annotations

import secrets
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from python_on_whales import Container, DockerClient

from hactl.stack.envfile import read_env_file
from hactl.waiting import WaitAbortedError
from tests.support.compose import compose_default, load_compose
from tests.support.stack import HA_FILE, IMAGES_ENV, REPO, wait_for

pytestmark = pytest.mark.integration

PREFIX = "chatest-flush"  # chatest-*: what .ci/run and the test cleanup remove if a run dies
DYNAMIC_DIR = REPO / "traefik" / "dynamic"
BODY_DELAY_S = 0.4  # well past Traefik's default flush interval (100 ms)
MAIN_PORT, FALLBACK_PORT = 8001, 8002
REQUESTS = 20
READY_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 5.0
REQUESTS_BUDGET_S = 30.0  # about 20 x 0.4 s expected; stop sending past this
READY_PATH = "/flushtest-ready"

BACKEND = textwrap.dedent(
    """
    import sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    DELAY = float(sys.argv[1])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # the headers leave at end_headers(), not with the body

        def log_message(self, *args):
            pass

        def answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"detail": "%s"}' % self.name.encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Backend", self.name)
            if self.name == "fallback":
                self.send_header("Retry-After", "5")
            self.end_headers()  # writes the status line and headers to the socket now
            if self.name == "main":
                time.sleep(DELAY)
            self.wfile.write(body)

        do_GET = do_POST = answer

    class Main(Handler):
        name = "main"

    class Fallback(Handler):
        name = "fallback"

    fallback = ThreadingHTTPServer(("", int(sys.argv[3])), Fallback)
    threading.Thread(target=fallback.serve_forever, daemon=True).start()
    ThreadingHTTPServer(("", int(sys.argv[2])), Main).serve_forever()
    """
)


def web_labels() -> dict[str, str]:
    return load_compose(HA_FILE)["services"]["web"]["labels"]


def compose_flush_interval() -> str:
    """The sticky services' flush interval in docker-compose.ha.yml (web and web-secure agree)."""
    labels = web_labels()
    key = "traefik.http.services.{}.loadbalancer.responseforwarding.flushinterval"
    interval = labels.get(key.format("web"))
    assert interval, f"docker-compose.ha.yml sets no {key.format('web')}"
    assert labels.get(key.format("web-secure")) == interval, "web-secure's flush interval differs"
    return interval


def compose_router_middlewares() -> list[str]:
    """The web router's middleware chain: the default of `${WEB_MIDDLEWARES:-...}`."""
    chain = compose_default(web_labels()["traefik.http.routers.web.middlewares"]).split(",")
    assert "retry@file" in chain, chain
    return chain


def dynamic_files(backend: str, flush_interval: str | None) -> dict[str, str]:
    """Our dynamic files for the file provider, with the Docker provider's part written out.

    middlewares.yml goes as it is (retry, rate limit, headers, the pinned/backend transports);
    failover.yml with `@docker` services turned into `@file` ones, defined here the way the web
    labels define them (the transports, and the flush interval when given). Neither sticky
    cookies nor health checks: one server each, and the passive check would take the main
    server out after its first 503 and spare the later requests the late body.
    """
    failover = (DYNAMIC_DIR / "failover.yml").read_text()
    assert "web@docker" in failover and "web-any@docker" in failover
    web: dict = {
        "servers": [{"url": f"http://{backend}:{MAIN_PORT}"}],
        "serversTransport": web_labels()["traefik.http.services.web.loadbalancer.serverstransport"],
    }
    if flush_interval is not None:
        web["responseForwarding"] = {"flushInterval": flush_interval}
    web_any = {
        "servers": [{"url": f"http://{backend}:{FALLBACK_PORT}"}],
        "serversTransport": web_labels()[
            "traefik.http.services.web-any.loadbalancer.serverstransport"
        ],
    }
    routes = {
        "http": {
            "routers": {
                "web": {
                    "rule": "PathPrefix(`/`)",
                    "entryPoints": ["web"],
                    "service": web_labels()["traefik.http.routers.web.service"],
                    "middlewares": compose_router_middlewares(),
                },
                # Answers (the fallback's 503) once the configuration and the backend are up.
                "ready": {
                    "rule": f"Path(`{READY_PATH}`)",
                    "entryPoints": ["web"],
                    "priority": 100000,
                    "service": "web-any",
                },
            },
            "services": {"web": {"loadBalancer": web}, "web-any": {"loadBalancer": web_any}},
        }
    }
    return {
        "middlewares.yml": (DYNAMIC_DIR / "middlewares.yml").read_text(),
        "failover.yml": failover.replace("@docker", "@file"),
        "routes.yml": yaml.safe_dump(routes, sort_keys=False),
    }


def images() -> dict[str, str]:
    return read_env_file(IMAGES_ENV)


@dataclass
class Backend:
    docker: DockerClient
    network: str
    name: str


@pytest.fixture(scope="module")
def backend(docker_engine: DockerClient) -> Iterator[Backend]:
    """A network of our own and the two-port stdlib backend on it."""
    token = secrets.token_hex(3)
    network = f"{PREFIX}-{token}"
    name = f"{PREFIX}-backend-{token}"
    docker_engine.network.create(network)
    try:
        docker_engine.run(
            images()["PYTHON_BASE_IMAGE"],
            ["python3", "-c", BACKEND, str(BODY_DELAY_S), str(MAIN_PORT), str(FALLBACK_PORT)],
            name=name,
            networks=[network],
            detach=True,
        )
        yield Backend(docker_engine, network, name)
    finally:
        if docker_engine.container.exists(name):
            docker_engine.container.remove(name, force=True)
        docker_engine.network.remove(network)


def published_port(container: Container) -> int:
    container.reload()
    bindings = container.network_settings.ports["80/tcp"]
    assert bindings, f"{container.name} publishes no port 80"
    return int(bindings[0]["HostPort"])


def ready(docker: DockerClient, containers: list[str], url: str) -> bool:
    for name in containers:
        if not docker.container.inspect(name).state.running:
            raise WaitAbortedError(f"{name} exited: {docker.container.logs(name)}")
    response = httpx.get(url + READY_PATH, timeout=2)
    return response.headers.get("x-backend") == "fallback"


StartTraefik = Callable[[str | None], str]


@pytest.fixture
def traefik(backend: Backend) -> Iterator[StartTraefik]:
    """Start Traefik on our dynamic files with the given flush interval; its base URL."""
    docker = backend.docker
    started: list[Container] = []

    def start(flush_interval: str | None) -> str:
        name = f"{PREFIX}-traefik-{secrets.token_hex(3)}"
        container = docker.container.create(
            images()["TRAEFIK_IMAGE"],
            [
                "traefik",
                "--global.checkNewVersion=false",
                "--global.sendAnonymousUsage=false",
                "--log.level=INFO",
                "--entryPoints.web.address=:80",
                "--providers.file.directory=/etc/flushtest-dynamic",
                "--providers.file.watch=false",
            ],
            name=name,
            networks=[backend.network],
            publish=[("127.0.0.1:", 80)],
        )
        started.append(container)
        with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-") as tmp:
            for file, text in dynamic_files(backend.name, flush_interval).items():
                (Path(tmp) / file).write_text(text)
            docker.copy(tmp, (container, "/etc/flushtest-dynamic"))
        container.start()
        url = f"http://127.0.0.1:{published_port(container)}"
        wait_for(
            lambda: ready(docker, [backend.name, name], url),
            READY_TIMEOUT_S,
            f"{name} routes to the backend",
        )
        return url

    try:
        yield start
    finally:
        for container in started:
            docker.container.remove(container, force=True)


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    seconds: float


def post_chats(url: str) -> list[Answer]:
    """REQUESTS sequential POSTs (a chat turn, as in the chaos run that lost one), within
    REQUESTS_BUDGET_S: fewer answers come back if Traefik is that slow."""
    answers = []
    deadline = time.monotonic() + REQUESTS_BUDGET_S
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        for _ in range(REQUESTS):
            if time.monotonic() > deadline:
                break
            start = time.monotonic()
            response = client.post(
                "/api/v1/chat",
                json={"message": "hello"},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            answers.append(Answer(response.status_code, response.headers, time.monotonic() - start))
    return answers


def test_compose_flush_interval_keeps_the_fallbacks_503(traefik: StartTraefik) -> None:
    answers = post_chats(traefik(compose_flush_interval()))
    statuses = [a.status for a in answers]
    assert statuses == [503] * REQUESTS, statuses
    for answer in answers:
        # The fallback's own answer, after the main service's late 503 body was read through.
        assert answer.headers.get("x-backend") == "fallback", answer
        assert answer.headers.get("retry-after") == "5", answer
        assert answer.seconds >= BODY_DELAY_S, answer


def test_default_flush_interval_turns_the_503_into_a_200(traefik: StartTraefik) -> None:
    """Shows the test above can fail: Traefik's default flush commits a 200 mid-failover."""
    answers = post_chats(traefik(None))
    statuses = [a.status for a in answers]
    leaked = [a for a in answers if a.status == 200]
    assert leaked, f"no 200 with the default flush interval: {statuses}"
    for answer in leaked:
        # As in the chaos run: none of the backend's headers, the fallback's 503 came too late.
        assert "x-backend" not in answer.headers and "retry-after" not in answer.headers, answer
    print(f"default flush interval: {len(leaked)}/{len(answers)} answers were 200: {statuses}")

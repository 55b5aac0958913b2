"""Each image named in .env.images does its job for real (local builds without a registry)."""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from python_on_whales import DockerClient, Network

from hactl.stack.envfile import read_env_file
from tests.support.stack import IMAGES_ENV, free_port, wait_for

pytestmark = pytest.mark.integration

IMAGES = read_env_file(IMAGES_ENV)


@pytest.fixture
def network(docker_engine: DockerClient) -> Iterator[Network]:
    net = docker_engine.network.create(f"chatest-airgap-{secrets.token_hex(3)}")
    try:
        yield net
    finally:
        for c in docker_engine.container.list(all=True, filters=[("network", net.name)]):
            c.remove(force=True, volumes=True)
        net.remove()


def test_every_image_in_env_file_exists(docker_engine: DockerClient) -> None:
    expected = {
        "PYTHON_BASE_IMAGE",
        "TRAEFIK_IMAGE",
        "POSTGRES_IMAGE",
        "PROMETHEUS_IMAGE",
        "ALERTMANAGER_IMAGE",
        "NODE_EXPORTER_IMAGE",
        "SOCKET_PROXY_IMAGE",
        "FRONTEND_IMAGE",
    }
    assert expected <= IMAGES.keys()
    for var in expected:
        assert docker_engine.image.exists(IMAGES[var]), f"{var}={IMAGES[var]} is not in the engine"


def test_traefik_routes_labelled_container_and_ignores_unlabelled(
    docker_engine: DockerClient, network: Network
) -> None:
    version = docker_engine.run(IMAGES["TRAEFIK_IMAGE"], ["version"], remove=True)
    assert "Version:" in str(version)

    def backend(name: str, enable: bool) -> None:
        labels = {
            f"traefik.http.routers.{name}.rule": f"Host(`{name}.test`)",
            f"traefik.http.services.{name}.loadbalancer.server.port": "8000",
        }
        if enable:
            labels["traefik.enable"] = "true"
        docker_engine.run(
            IMAGES["PYTHON_BASE_IMAGE"],
            ["python3", "-m", "http.server", "8000"],
            detach=True,
            networks=[network],
            labels=labels,
            name=f"{network.name}-{name}",
        )

    backend("labelled", enable=True)
    backend("unlabelled", enable=False)
    port = free_port()
    docker_engine.run(
        IMAGES["TRAEFIK_IMAGE"],
        [
            "--providers.docker.exposedByDefault=false",
            f"--providers.docker.network={network.name}",
            "--entryPoints.web.address=:80",
            "--providers.providersThrottleDuration=200ms",
        ],
        detach=True,
        networks=[network],
        publish=[(f"127.0.0.1:{port}", 80)],
        volumes=[("/var/run/docker.sock", "/var/run/docker.sock", "ro")],
        name=f"{network.name}-traefik",
    )
    url = f"http://127.0.0.1:{port}/"
    wait_for(
        lambda: httpx.get(url, headers={"Host": "labelled.test"}, timeout=2).status_code == 200,
        60,
        "Traefik to route to the labelled container",
    )
    assert httpx.get(url, headers={"Host": "unlabelled.test"}, timeout=2).status_code == 404


def test_postgres_honours_env_contract_and_keeps_data(
    docker_engine: DockerClient, network: Network, tmp_path: Path
) -> None:
    (tmp_path / "initdb").mkdir()
    (tmp_path / "initdb" / "01-schema.sql").write_text(
        "CREATE TABLE seeded (id int PRIMARY KEY); INSERT INTO seeded VALUES (42);\n"
    )
    (tmp_path / "password").write_text("s3cret-from-file\n")
    volume = docker_engine.volume.create(f"{network.name}-pgdata")
    name = f"{network.name}-pg"

    def start() -> None:
        docker_engine.run(
            IMAGES["POSTGRES_IMAGE"],
            detach=True,
            networks=[network],
            name=name,
            envs={
                "POSTGRES_USER": "alice",
                "POSTGRES_DB": "shop",
                "POSTGRES_PASSWORD_FILE": "/run/pw",
            },
            volumes=[
                (volume, "/var/lib/postgresql/data"),
                (tmp_path / "initdb", "/docker-entrypoint-initdb.d", "ro"),
                (tmp_path / "password", "/run/pw", "ro"),
            ],
        )
        wait_for(
            lambda: docker_engine.execute(name, ["pg_isready", "-h", "127.0.0.1", "-U", "alice"]),
            60,
            "postgres to accept connections",
        )

    def sql(query: str) -> str:
        # Over TCP with the password: proves the env-configured user and password work.
        return str(
            docker_engine.execute(
                name,
                ["psql", "-h", "127.0.0.1", "-U", "alice", "-d", "shop", "-At", "-c", query],
                envs={"PGPASSWORD": "s3cret-from-file"},
            )
        )

    try:
        start()
        assert sql("SELECT id FROM seeded") == "42", "the init script did not run"
        sql("INSERT INTO seeded VALUES (7)")
        docker_engine.container.restart(name)
        wait_for(lambda: sql("SELECT count(*) FROM seeded") == "2", 60, "data after a restart")
        # A new container on the same volume keeps the data and does not re-run init scripts.
        docker_engine.container.remove(name, force=True)
        start()
        assert sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM seeded") == "7,42"
        wrong = docker_engine.container.execute(
            name,
            [
                "sh",
                "-c",
                "PGPASSWORD=wrong psql -h 127.0.0.1 -U alice -d shop -c 'select 1' 2>&1 || true",
            ],
        )
        assert "password authentication failed" in str(wrong)
    finally:
        docker_engine.container.remove(name, force=True)
        docker_engine.volume.remove(volume)


def test_prometheus_checks_config_and_answers_ready(
    docker_engine: DockerClient, network: Network
) -> None:
    out = docker_engine.run(
        IMAGES["PROMETHEUS_IMAGE"],
        ["check", "config", "/etc/prometheus/prometheus.yml"],
        entrypoint="/bin/promtool",
        remove=True,
    )
    assert "SUCCESS" in str(out)
    port = free_port()
    docker_engine.run(
        IMAGES["PROMETHEUS_IMAGE"],
        detach=True,
        networks=[network],
        publish=[(f"127.0.0.1:{port}", 9090)],
        name=f"{network.name}-prom",
    )
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200,
        60,
        "prometheus /-/ready",
    )


def test_alertmanager_and_node_exporter_serve(
    docker_engine: DockerClient, network: Network
) -> None:
    am, ne = free_port(), free_port()
    docker_engine.run(
        IMAGES["ALERTMANAGER_IMAGE"],
        detach=True,
        networks=[network],
        publish=[(f"127.0.0.1:{am}", 9093)],
        name=f"{network.name}-am",
    )
    docker_engine.run(
        IMAGES["NODE_EXPORTER_IMAGE"],
        detach=True,
        networks=[network],
        publish=[(f"127.0.0.1:{ne}", 9100)],
        name=f"{network.name}-ne",
    )
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{am}/-/ready", timeout=2).status_code == 200,
        60,
        "alertmanager /-/ready",
    )
    metrics = wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{ne}/metrics", timeout=2).text,
        60,
        "node-exporter /metrics",
    )
    assert "node_cpu_seconds_total" in str(metrics)


def test_base_image_can_pip_install_during_a_build(
    docker_engine: DockerClient, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(
        textwrap.dedent(f"""\
        FROM {IMAGES["PYTHON_BASE_IMAGE"]}
        RUN python3 -m venv /opt/v && /opt/v/bin/pip install --no-cache-dir six==1.16.0
        """)
    )
    tag = f"chatest-pip:{secrets.token_hex(3)}"
    try:
        docker_engine.legacy_build(tmp_path, tags=[tag])  # no buildx on this engine
        out = docker_engine.run(
            tag, ["/opt/v/bin/python", "-c", "import six; print(six.__version__)"], remove=True
        )
        assert str(out).strip() == "1.16.0"
    finally:
        if docker_engine.image.exists(tag):
            docker_engine.image.remove(tag, force=True)

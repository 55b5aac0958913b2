"""hactl against a real HA stack, under a constant-rate stream of GETs and idempotent POSTs.

One stack for the module (3 replicas of `compose-ha/web:hx-v1`); the tests run in file order:
verify, a rollout to a broken image (rolled back), a rollout v1 -> v2, scaling 3 -> 5 -> 2.
Every load is bounded in time and rate; failed requests must be zero and every acknowledged
write must be stored exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from python_on_whales import DockerClient

from hactl.stack.envfile import read_env_file
from hactl.stack.project import process_env
from tests.support.load import BackgroundLoad
from tests.support.stack import BASE_FILE, IMAGES_ENV, REPO, Stack, ha_files
from tests.support.timings import record_timing

pytestmark = pytest.mark.e2e

HACTL = str(Path(sys.executable).parent / "hactl")
V1 = "compose-ha/web:hx-v1"
V2 = "compose-ha/web:hx-v2"
BROKEN = "compose-ha/web:hx-broken"
CRASHING = "compose-ha/web:hx-crashing"
VERSIONS = {V1: "1.0.0-hx", V2: "2.0.0-hx"}
RATE = 20.0
# The load goes on this long after the operation returned (the stack as it is left), then stops;
# each test's duration is only the upper bound.
TAIL_S = 5.0
# Same image, but /readyz is 503 forever: the state dir it reads holds an `unready` flag.
BROKEN_DOCKERFILE = f"""
FROM {V1}
USER root
RUN mkdir -p /opt/broken-state && touch /opt/broken-state/unready \\
    && chown -R 10001:10001 /opt/broken-state
USER 10001:10001
ENV APP_STATE_DIR=/opt/broken-state
"""

# Exits at once: Docker restarts it again and again (restart: unless-stopped).
CRASHING_DOCKERFILE = f"""
FROM {V1}
CMD ["python3", "-c", "import sys; sys.exit(1)"]
"""


# --- images and stack ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def test_images(docker_engine: DockerClient, tmp_path_factory: pytest.TempPathFactory) -> None:
    builder = DockerClient(
        compose_files=[BASE_FILE],
        compose_env_files=[IMAGES_ENV],
        compose_project_name="hx-image-build",
        compose_project_directory=REPO,
    )
    for image, version in VERSIONS.items():
        with process_env({"WEB_IMAGE": image, "APP_VERSION": version}):
            builder.compose.build(["web"])
        assert docker_engine.image.exists(image), f"building {image} failed"
    for tag, dockerfile in ((BROKEN, BROKEN_DOCKERFILE), (CRASHING, CRASHING_DOCKERFILE)):
        context = tmp_path_factory.mktemp("image")
        (context / "Dockerfile").write_text(dockerfile)
        docker_engine.legacy_build(context, tags=[tag])


@pytest.fixture(scope="module")
def stack(test_images: None) -> Iterator[Stack]:
    s = Stack("hx", ha_files(), env={"WEB_REPLICAS": "3", "WEB_IMAGE": V1})
    try:
        s.up()
        s.wait_in_rotation(3)
        yield s
    finally:
        s.down()


@pytest.fixture(scope="module")
def rollout_env(stack: Stack) -> Path:
    return stack.workdir / f"{stack.project}.env.rollout"


def hactl(stack: Stack, rollout_env: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script; the stack is found by its project name alone."""
    command = [HACTL, "--project", stack.project, "--rollout-env-file", str(rollout_env), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)


def status(stack: Stack, rollout_env: Path) -> list[dict[str, object]]:
    result = hactl(stack, rollout_env, "--json", "status")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["replicas"]


# --- load ------------------------------------------------------------------------------------
class BoundedLoad(BackgroundLoad):
    """The shared background load at this module's rate, with marks for failure messages."""

    def __init__(self, stack: Stack, duration_s: float) -> None:
        super().__init__(stack, rate=RATE, duration_s=duration_s, clients=8)
        self.marks: dict[str, float] = {}

    def mark(self, what: str) -> None:
        """Note when something happened, in seconds of the run, for failure messages."""
        self.marks[what] = round(self.elapsed(), 1)

    def assert_no_failures(self) -> None:
        result = self.result()
        summary = result.summary()
        failed = [
            f"#{r.seq} {r.method} {r.path} at {r.intended_s:.1f}s after {r.latency_s or 0.0:.2f}s: "
            f"{r.failure_kind} {r.error or ''}"
            for r in result.records
            if not r.ok
        ][:20]
        assert summary.total > 0
        per_second = Counter(int(r.intended_s) for r in result.records if not r.ok)
        assert summary.failed == 0, (
            f"{summary.failed} of {summary.total} failed; failures per second of the run: "
            f"{dict(sorted(per_second.items()))}; marks: {self.marks}; first ones: {failed}; "
            f"Traefik errors: {traefik_errors(self.stack)}"
        )
        check = self.write_check()
        assert not check.lost, f"acknowledged writes lost: {check.lost[:10]}"
        assert not check.duplicated, f"writes stored twice: {check.duplicated}"


def traefik_errors(stack: Stack, limit: int = 5) -> list[str]:
    """The last distinct error messages in Traefik's log: why requests failed, if it knows."""
    logs = str(stack.docker.compose.logs(["traefik"], tail="300", no_log_prefix=True))
    messages: list[str] = []
    for line in logs.splitlines():
        if '"level":"error"' in line:
            try:
                entry = json.loads(line[line.index("{") :])
            except ValueError:
                continue
            text = f"{entry.get('time')} {entry.get('message') or entry.get('error')}"
            if text.split(" ", 1)[1] not in {m.split(" ", 1)[1] for m in messages}:
                messages.append(text)
    return messages[-limit:]


def lb_versions(stack: Stack, samples: int = 30) -> set[str]:
    with httpx.Client(base_url=stack.base_url, timeout=5) as client:
        return {client.get("/api/v1/whoami").json()["version"] for _ in range(samples)}


# --- tests -----------------------------------------------------------------------------------
def test_bad_input_changes_nothing(stack: Stack, rollout_env: Path) -> None:
    before = sorted(c.id for c in stack.containers("web"))
    for args, code in (
        (["scale", "0"], 2),
        (["scale", "11"], 2),
        (["rollout", "--image", "compose-ha/web:no-such-tag"], 2),
    ):
        result = hactl(stack, rollout_env, *args)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert "error:" in result.stderr
    assert sorted(c.id for c in stack.containers("web")) == before
    missing = subprocess.run(
        [HACTL, "--project", "chatest-hx-not-running", "scale", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert "not running" in missing.stderr


def test_verify_passes_on_a_healthy_stack(stack: Stack, rollout_env: Path) -> None:
    # On a shared 2-core host a health check can time out once; verify reports that truthfully,
    # so a second chance is given after the stack is back in rotation.
    for _attempt in range(2):
        stack.wait_in_rotation(3)
        result = hactl(stack, rollout_env, "--json", "verify", "--replicas", "3")
        if result.returncode == 0:
            break
    report = json.loads(result.stdout)
    assert result.returncode == 0, report
    assert report["passed"] is True
    names = {check["name"] for check in report["checks"]}
    assert {
        "replica count",
        "all healthy",
        "all UP in Traefik",
        "spread without cookie",
        "sticky cookie pins",
        "/readyz through the LB",
        "database reachable",
    } <= names


def test_verify_fails_naming_the_check_while_a_replica_is_paused(
    stack: Stack, rollout_env: Path
) -> None:
    victim = stack.containers("web")[0]
    victim.pause()
    try:
        result = hactl(stack, rollout_env, "--json", "verify", "--replicas", "3")
    finally:
        victim.unpause()
    report = json.loads(result.stdout)
    assert result.returncode == 1
    failed = {check["name"] for check in report["checks"] if not check["passed"]}
    assert "all healthy" in failed
    assert any(
        victim.name in check["detail"]
        for check in report["checks"]
        if check["name"] == "all healthy"
    )
    assert "failed: " in result.stderr and "all healthy" in result.stderr
    stack.wait_in_rotation(3)


def test_rollout_to_a_broken_image_rolls_back(stack: Stack, rollout_env: Path) -> None:
    before = {r["name"] for r in status(stack, rollout_env)}
    with BoundedLoad(stack, duration_s=60) as load:
        started = time.monotonic()
        result = hactl(stack, rollout_env, "rollout", "--image", BROKEN, "--timeout", "20")
        load.finish(after_s=TAIL_S)
        record_timing(
            "hactl rollout broken image, rolled back",
            time.monotonic() - started,
            command=f"hactl rollout --image {BROKEN} --timeout 20",
            load_rps=RATE,
        )
    assert result.returncode != 0
    assert "rolled back" in result.stderr
    load.assert_no_failures()
    replicas = status(stack, rollout_env)
    assert {r["name"] for r in replicas} == before
    assert {r["version"] for r in replicas} == {VERSIONS[V1]}
    assert all(r["in_rotation"] for r in replicas)
    assert read_env_file(rollout_env).get("WEB_IMAGE") in (None, V1)


def test_rollout_gives_up_early_on_a_crash_looping_image(stack: Stack, rollout_env: Path) -> None:
    before = {r["name"] for r in status(stack, rollout_env)}
    with BoundedLoad(stack, duration_s=30) as load:
        started = time.monotonic()
        result = hactl(stack, rollout_env, "rollout", "--image", CRASHING, "--timeout", "120")
        seconds = time.monotonic() - started
        load.finish(after_s=TAIL_S)
        record_timing(
            "hactl rollout crash-looping image, rolled back",
            seconds,
            command=f"hactl rollout --image {CRASHING} --timeout 120",
            load_rps=RATE,
        )
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "rolled back" in message and "crash-loops" in message, message
    assert "timed out" not in message  # it gave up early instead of waiting out --timeout
    load.assert_no_failures()
    replicas = status(stack, rollout_env)
    assert {r["name"] for r in replicas} == before
    assert {r["version"] for r in replicas} == {VERSIONS[V1]}


def test_rollout_v1_to_v2_loses_nothing(stack: Stack, rollout_env: Path) -> None:
    old = {c.name for c in stack.containers("web")}
    with BoundedLoad(stack, duration_s=90) as load:
        started = time.monotonic()
        result = hactl(stack, rollout_env, "--json", "rollout", "--image", V2, "--timeout", "120")
        load.finish(after_s=TAIL_S)
        record_timing(
            "hactl rollout 3 replicas v1->v2",
            time.monotonic() - started,
            command=f"hactl rollout --image {V2} --batch 1",
            load_rps=RATE,
        )
    assert result.returncode == 0, result.stderr
    load.assert_no_failures()
    report = json.loads(result.stdout)
    assert {s["name"] for s in report["stopped"]} == old
    assert all(s["exit_code"] == 0 for s in report["stopped"]), report["stopped"]
    replicas = status(stack, rollout_env)
    assert len(replicas) == 3
    assert not old & {r["name"] for r in replicas}
    assert {r["version"] for r in replicas} == {VERSIONS[V2]}
    assert {r["image"] for r in replicas} == {V2}
    assert lb_versions(stack) == {VERSIONS[V2]}
    assert read_env_file(rollout_env)["WEB_IMAGE"] == V2


def test_compose_up_after_rollout_keeps_the_new_image(stack: Stack, rollout_env: Path) -> None:
    """What `make up-ha` does, with the rollout env file last: nothing is recreated."""
    before = sorted(c.id for c in stack.containers("web"))
    DockerClient(
        compose_files=stack.files,
        compose_env_files=[*stack.env_files, rollout_env],
        compose_project_name=stack.project,
        compose_project_directory=REPO,
    ).compose.up(detach=True, wait=True, wait_timeout=120)
    assert sorted(c.id for c in stack.containers("web")) == before
    assert {c.config.image for c in stack.containers("web")} == {V2}


def test_scale_3_to_5_to_2_loses_nothing(stack: Stack, rollout_env: Path) -> None:
    with BoundedLoad(stack, duration_s=75) as load:
        started = time.monotonic()
        load.mark("scale 5 starts")
        up = hactl(stack, rollout_env, "scale", "5")
        record_timing(
            "hactl scale 3->5", time.monotonic() - started, command="hactl scale 5", load_rps=RATE
        )
        assert up.returncode == 0, up.stderr
        assert [r["in_rotation"] for r in status(stack, rollout_env)] == [True] * 5
        started = time.monotonic()
        load.mark("scale 2 starts")
        down = hactl(stack, rollout_env, "scale", "2")
        load.mark("scale 2 done")
        record_timing(
            "hactl scale 5->2", time.monotonic() - started, command="hactl scale 2", load_rps=RATE
        )
        assert down.returncode == 0, down.stderr
        assert [r["in_rotation"] for r in status(stack, rollout_env)] == [True] * 2
        load.finish(after_s=TAIL_S)
    load.assert_no_failures()
    assert len(stack.containers("web", all_states=True)) == 2
    assert read_env_file(rollout_env)["WEB_REPLICAS"] == "2"
    stack.wait_in_rotation(2)

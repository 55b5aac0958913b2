"""`hactl rollout --canary` against a real HA stack under a constant-rate stream of requests.

One stack for the module (3 replicas of the project's web image). The releases are built here
from that image, nothing is added to the backend: a test-only ASGI wrapper (FAULT_APP below)
answers 500 to a fraction of the API calls, or answers them late, and passes every health check.
In file order: a failing release is aborted at its first step, a slow one on its p99, a good one
is promoted through every step with no failed request (100 requests/s, 30 % writes, cookie-less
clients and a browser of several connections sharing one cookie), then blue/green to a failing
release switches back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from python_on_whales import DockerClient

from hactl.loadgen.generator import LoadResult
from hactl.stack.envfile import read_env_file
from tests.support.load import GETS_AND_WRITES, BackgroundLoad, failures
from tests.support.stack import REPO, Stack, ha_files
from tests.support.timings import record_timing

pytestmark = pytest.mark.e2e

HACTL = str(Path(sys.executable).parent / "hactl")
BASE_IMAGE = "compose-ha/web:latest"
# Image tags of this module's releases (CANARY_TEST_TAG lets a shared engine keep runs apart).
TAG = os.environ.get("CANARY_TEST_TAG", "compose-ha/web:hx-canary")
GOOD, FAILING, SLOW = f"{TAG}-good", f"{TAG}-failing", f"{TAG}-slow"
FAULT_FRACTION = 0.3
FIRST_STEP = 10
TAIL_S = 3.0
RECORDS_DIR = REPO / ".pytest_cache" / "canary"

# Test-only: wraps the real app; what it does comes from the image's environment.
FAULT_APP = '''\
"""Fails (500) or delays a fraction of the API calls; everything else is the real app."""
import asyncio
import os
import random

from app.main import create_app as create_real_app

FRACTION = float(os.environ.get("FAULT_FRACTION", "0"))
DELAY_S = float(os.environ.get("FAULT_DELAY_S", "0"))
PREFIX = os.environ.get("FAULT_PATH_PREFIX", "/api/")
BODY = b'{"detail": "injected fault"}'


def create_app():
    real = create_real_app()

    async def app(scope, receive, send):
        hit = scope["type"] == "http" and scope["path"].startswith(PREFIX)
        if hit and random.random() < FRACTION:
            if not DELAY_S:
                headers = [(b"content-type", b"application/json"),
                           (b"content-length", str(len(BODY)).encode())]
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": BODY})
                return
            await asyncio.sleep(DELAY_S)
        await real(scope, receive, send)

    return app
'''


def release_dockerfile(version: str, **env: str) -> str:
    settings = " ".join(f"{k}={v}" for k, v in {"APP_VERSION": version, **env}.items())
    return (
        f"FROM {BASE_IMAGE}\n"
        "COPY fault_app.py /app/fault_app.py\n"
        f"ENV {settings}\n"
        f'LABEL org.opencontainers.image.version="{version}"\n'
        'CMD ["gunicorn", "-c", "/app/gunicorn.conf.py", "fault_app:create_app()"]\n'
    )


RELEASES = {
    GOOD: release_dockerfile("2.0.0-good"),
    FAILING: release_dockerfile("2.0.0-failing", FAULT_FRACTION=str(FAULT_FRACTION)),
    SLOW: release_dockerfile(
        "2.0.0-slow", FAULT_FRACTION="1", FAULT_DELAY_S="0.4", FAULT_PATH_PREFIX="/api/v1/whoami"
    ),
}


@pytest.fixture(scope="module")
def releases(docker_engine: DockerClient, tmp_path_factory: pytest.TempPathFactory) -> None:
    for tag, dockerfile in RELEASES.items():
        context = tmp_path_factory.mktemp("release")
        (context / "Dockerfile").write_text(dockerfile)
        (context / "fault_app.py").write_text(FAULT_APP)
        docker_engine.legacy_build(context, tags=[tag])


@pytest.fixture(scope="module")
def stack(releases: None) -> Iterator[Stack]:
    s = Stack("canary", ha_files(), env={"WEB_REPLICAS": "3", "WEB_IMAGE": BASE_IMAGE})
    try:
        s.up()
        s.wait_in_rotation(3)
        yield s
    finally:
        s.docker.compose.down(volumes=True, remove_orphans=True, timeout=5)
        (REPO / "traefik" / "dynamic" / f"canary-{s.project}.yml").unlink(missing_ok=True)
        s.env_file.unlink(missing_ok=True)


def hactl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    rollout_env = stack.workdir / f"{stack.project}.env.rollout"
    command = [HACTL, "--project", stack.project, "--rollout-env-file", str(rollout_env), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def canary_run(
    stack: Stack, image: str, steps: str, step_seconds: int, rate: float, min_requests: int
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], LoadResult, tuple[float, float]]:
    """hactl rollout --canary under load; (process, its JSON report, the load, hactl's window)."""
    with BackgroundLoad(stack, rate=rate, duration_s=240, mix=GETS_AND_WRITES, clients=16) as load:
        load.wait_until(2.0)
        began = load.elapsed()
        result = hactl(
            stack,
            "--json",
            "rollout",
            "--canary",
            steps,
            "--image",
            image,
            "--step-seconds",
            str(step_seconds),
            "--min-requests",
            str(min_requests),
        )
        ended = load.elapsed()
        load.finish(TAIL_S)
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    check = load.write_check()
    assert not check.lost, f"acknowledged writes lost: {check.lost[:10]}"
    assert not check.duplicated, f"writes stored twice: {check.duplicated}"
    return result, report, load.result(), (began, ended)


def assert_back_on_stable(stack: Stack, version: str) -> None:
    canaries = DockerClient().container.list(
        all=True,
        filters=[
            ("label", f"com.docker.compose.project={stack.project}"),
            ("label", "com.docker.compose.service=web-canary"),
        ],
    )
    assert not canaries, f"canary containers left: {[c.name for c in canaries]}"
    assert not (REPO / "traefik" / "dynamic" / f"canary-{stack.project}.yml").exists()
    replicas = stack.wait_in_rotation(3, timeout=60)
    assert {r.config.image for r in replicas} == {version}


def test_a_release_failing_a_share_of_api_calls_is_aborted_at_its_first_step(
    stack: Stack,
) -> None:
    result, report, load, (began, ended) = canary_run(
        stack, FAILING, "10,50,100", step_seconds=20, rate=60, min_requests=50
    )
    assert result.returncode == 3, result.stderr
    assert "canary aborted at step 1" in result.stderr, result.stderr
    (step,) = report["steps"]
    assert step["decision"] == "abort" and "5xx ratio" in step["reasons"][0], step
    assert step["canary"]["error_ratio"] > step["stable"]["error_ratio"] + 0.05, step
    # The clients saw at most about the first step's share of the release's errors.
    during = [r for r in load.records if began <= r.intended_s <= ended]
    failed = [r for r in load.records if not r.ok]
    bound = FIRST_STEP / 100 * FAULT_FRACTION * len(during) * 1.5 + 3
    assert len(failed) <= bound, (len(failed), len(during), failures(load))
    assert {r.status for r in failed} <= {500}, failures(load)
    assert_back_on_stable(stack, BASE_IMAGE)
    record_timing(
        "canary aborted on errors",
        ended - began,
        command="hactl rollout --canary 10,50,100",
        failed=len(failed),
        requests_during=len(during),
        step=step,
    )


def test_a_release_with_a_slow_endpoint_is_aborted_on_its_p99(stack: Stack) -> None:
    result, report, load, _ = canary_run(
        stack, SLOW, "10,100", step_seconds=20, rate=60, min_requests=50
    )
    assert result.returncode == 3, result.stderr
    (step,) = report["steps"]
    assert step["decision"] == "abort" and "p99" in " ".join(step["reasons"]), step
    assert step["canary"]["p99_ms"] > 2 * step["stable"]["p99_ms"], step
    assert load.summary().failed == 0, failures(load)
    assert_back_on_stable(stack, BASE_IMAGE)
    record_timing(
        "canary aborted on p99", step["seconds"], command="hactl rollout --canary 10,100", step=step
    )


def test_a_good_release_is_promoted_through_every_step_losing_nothing(stack: Stack) -> None:
    old_hostnames = {c.config.hostname for c in stack.containers("web")}
    browser = 6
    load = BackgroundLoad(stack, rate=100, duration_s=300, mix=GETS_AND_WRITES, clients=22)
    load.generator.config.browser_clients = browser  # one cookie jar for the first 6 clients
    with load:
        load.wait_until(2.0)
        began = load.elapsed()
        result = hactl(
            stack,
            "--json",
            "rollout",
            "--canary",
            "10,50,100",
            "--image",
            GOOD,
            "--step-seconds",
            "10",
            "--min-requests",
            "50",
        )
        ended = load.elapsed()
        load.finish(TAIL_S)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [s["weight"] for s in report["steps"]] == [10, 50, 100], report
    assert all(s["decision"] == "promote" for s in report["steps"]), report["steps"]
    records = load.result().records
    assert load.result().summary().failed == 0, failures(load.result())
    assert (
        len([r for r in records if began <= r.intended_s <= ended]) >= 100 * (ended - began) * 0.95
    )
    check = load.write_check()
    assert check.acknowledged and not check.lost and not check.duplicated, check
    # The browser never went back to the old version once it had reached the new one.
    answered = sorted(
        (r for r in records if r.client < browser and r.ok), key=lambda r: r.done_s or 0
    )
    first_new = next((r.done_s for r in answered if r.replica not in old_hostnames), None)
    assert first_new is not None, "the browser never reached the new version"
    back = [r for r in answered if (r.sent_s or 0) > first_new and r.replica in old_hostnames]
    assert not back, [(r.seq, r.sent_s, r.replica) for r in back[:5]]
    assert_back_on_stable(stack, GOOD)
    rollout_env = stack.workdir / f"{stack.project}.env.rollout"
    assert read_env_file(rollout_env)["WEB_IMAGE"] == GOOD
    record_timing(
        "canary 10,50,100 promoted",
        ended - began,
        command="hactl rollout --canary 10,50,100",
        requests=len(records),
        steps=report["steps"],
    )


def test_blue_green_to_a_failing_release_switches_back(stack: Stack) -> None:
    result, report, load, (_, ended) = canary_run(
        stack, FAILING, "100", step_seconds=20, rate=60, min_requests=50
    )
    assert result.returncode == 3, result.stderr
    (step,) = report["steps"]
    assert step["weight"] == 100 and step["decision"] == "abort", step
    assert report["smoke_replicas"], report
    # Switched back: nothing sent after hactl returned failed.
    late = [r for r in load.records if not r.ok and r.intended_s > ended]
    assert not late, failures(load)
    print(
        "blue/green to the failing release:",
        load.summary().failed,
        "failed of",
        load.summary().total,
        "; step",
        step,
    )
    assert_back_on_stable(stack, GOOD)

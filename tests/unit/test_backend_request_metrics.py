"""Request metrics count traffic, not the probes and scrapes: two Traefik instances probe each
replica 12 times a second, which would otherwise fill the request rate and dilute its 5xx ratio
(probes answer 200 during a database outage). The app runs in process, no database."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.middleware import QUIET_PATHS
from app.settings import Settings

TOKEN = "unit-test-token"


def request_series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("http_request")]


def test_probes_and_scrapes_are_not_counted_as_requests(tmp_path: Path) -> None:
    app = create_app(Settings(api_tokens=TOKEN, replica_id="unit", app_state_dir=tmp_path))
    app.state.schema_verified = True  # /readyz/routing answers from memory
    client = TestClient(app)
    for path in ("/healthz", "/readyz/routing", "/metrics"):
        assert client.get(path).status_code == 200, path
    whoami = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {TOKEN}"})
    assert whoami.status_code == 200, whoami.text

    series = request_series(client.get("/metrics").text)
    assert any('handler="/api/v1/whoami"' in line for line in series), series
    for path in QUIET_PATHS:
        assert not [line for line in series if f'handler="{path}"' in line], path

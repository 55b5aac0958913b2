"""What one Traefik instance must route before a rollout moves on to the next one."""

from hactl.stack.traefik_instances import (
    FETCH_SCRIPT,
    METRICS_SCRIPT,
    InstanceView,
    instance_problems,
    shared_entrypoint_requests,
)


def _view(routers: dict[str, str], servers: dict[str, str]) -> InstanceView:
    return InstanceView(
        routers=[
            {"name": n, "status": s, "error": ["boom"] if s != "enabled" else None}
            for n, s in routers.items()
        ],
        services=[
            {
                "name": "web@docker",
                "loadBalancer": {"servers": [{"url": u} for u in servers]},
                "serverStatus": servers,
            }
        ],
    )


ROUTERS = {"web@docker": "enabled", "web-secure@docker": "enabled"}
REPLICAS = {"web-1": {"172.18.0.5"}, "web-2": {"172.18.0.6"}}
UP = {"http://172.18.0.5:8000": "UP", "http://172.18.0.6:8000": "UP"}


def test_an_instance_that_routes_every_healthy_replica_has_no_problem() -> None:
    assert instance_problems(_view(ROUTERS, UP), REPLICAS) == []


def test_a_missing_or_failed_router_is_a_problem() -> None:
    problems = instance_problems(_view({"web@docker": "disabled"}, UP), REPLICAS)
    assert problems == ["router web@docker: boom", "router web-secure@docker missing"]


def test_a_healthy_replica_missing_or_no_server_up_is_a_problem() -> None:
    one = {"http://172.18.0.5:8000": "UP"}
    assert instance_problems(_view(ROUTERS, one), REPLICAS) == ["web@docker does not list web-2"]
    # A listed replica its own probe has DOWN for a moment is not a problem, none UP is.
    down = {**UP, "http://172.18.0.6:8000": "DOWN"}
    assert instance_problems(_view(ROUTERS, down), REPLICAS) == []
    none_up = {u: "DOWN" for u in UP}
    assert instance_problems(_view(ROUTERS, none_up), REPLICAS) == ["web@docker has no server UP"]


def test_the_fetch_script_is_valid_python() -> None:
    compile(FETCH_SCRIPT, "<fetch>", "exec")


METRICS = """# TYPE traefik_entrypoint_requests_total counter
traefik_entrypoint_requests_total{code="200",entrypoint="web",method="GET",protocol="http"} 40
traefik_entrypoint_requests_total{code="404",entrypoint="web",method="GET",protocol="http"} 2
traefik_entrypoint_requests_total{code="200",entrypoint="websecure",method="GET",protocol="http"} 5
traefik_entrypoint_requests_total{code="200",entrypoint="traefik",method="GET",protocol="http"} 7
traefik_entrypoint_requests_total{code="200",entrypoint="metrics",method="GET",protocol="http"} 9
"""


def test_shared_entrypoint_requests_count_web_and_websecure_only() -> None:
    # The API (traefik) and metrics entrypoints are not where clients' connections land.
    assert shared_entrypoint_requests(METRICS) == 47
    assert shared_entrypoint_requests("") == 0


def test_the_metrics_script_reads_every_port_in_one_process() -> None:
    """What `docker exec` runs in traefik-net, run here against two local metrics servers."""
    import json
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    def server(text: str) -> ThreadingHTTPServer:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return srv

    a, b = server("a 1\n"), server("b 2\n")
    try:
        ports = [str(a.server_address[1]), str(b.server_address[1])]
        out = subprocess.run(
            [sys.executable, "-c", METRICS_SCRIPT, *ports],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        a.shutdown()
        b.shutdown()
    assert json.loads(out) == {ports[0]: "a 1\n", ports[1]: "b 2\n"}

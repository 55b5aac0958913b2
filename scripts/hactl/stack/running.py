"""One object for a stack hactl operates on: where it is (Stack), the Docker client that drives
it, its published endpoints and Traefik's API. Operations take this instead of passing
`stack, endpoints, docker` through every signature."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from python_on_whales import DockerClient

from hactl.stack.endpoints import Endpoints, stack_endpoints
from hactl.stack.project import Stack
from hactl.stack.traefik_api import TraefikApi


@dataclass(frozen=True)
class RunningStack:
    stack: Stack
    docker: DockerClient
    endpoints: Endpoints

    @classmethod
    def connect(cls, stack: Stack) -> RunningStack:
        """The Docker client and endpoints for `stack` (nothing is contacted yet)."""
        return cls(stack, stack.docker(), stack_endpoints(stack))

    @property
    def project(self) -> str:
        return self.stack.project

    @cached_property
    def traefik(self) -> TraefikApi:
        return self.endpoints.traefik()

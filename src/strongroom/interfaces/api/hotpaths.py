"""The busiest routes, served without FastAPI's per-request machinery.

FastAPI declares these routes, with their dependencies, so they keep their
place in the OpenAPI document and work as ordinary routes too. This layer
matches them first, computes their dependencies from a fixed table
(`FAST_DEPENDENCIES`) and calls the endpoint directly. That skips the routing
over every route, the dependency solver and the exception middleware, which on
a folder listing cost more than the query (docs/benchmarks.md). Errors become
the same problem responses as on any other route.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from strongroom.interfaces.api.dependencies import FAST_DEPENDENCIES
from strongroom.interfaces.api.problems import handle_error


class HotPaths:
    def __init__(self, app: ASGIApp, routes: Sequence[APIRoute]) -> None:
        self.app = app
        self.routes = tuple(routes)
        for route in self.routes:
            _check_servable(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                if scope["method"] not in route.methods:
                    continue
                matched = route.path_regex.match(scope["path"])
                if matched is not None:
                    parameters = {
                        name: route.param_convertors[name].convert(value)
                        for name, value in matched.groupdict().items()
                    }
                    await self._serve(route, parameters, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    @staticmethod
    async def _serve(
        route: APIRoute, parameters: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        # The access log and the metrics label requests by the route, as the router would.
        scope["route"] = route
        scope["path_params"] = parameters
        request = Request(scope, receive)
        try:
            for dependency in route.dependant.dependencies:
                parameters[dependency.name] = await FAST_DEPENDENCIES[dependency.call](request)
            response: Response = await route.endpoint(**parameters)
        except Exception as error:  # noqa: BLE001 - every error gets its problem response
            response = await handle_error(request, error)
        await response(scope, receive, send)


def _check_servable(route: APIRoute) -> None:
    """Raise unless HotPaths can call the route exactly as FastAPI would."""
    unknown = [
        dependency.name
        for dependency in route.dependant.dependencies
        if dependency.call not in FAST_DEPENDENCIES
    ]
    if unknown:
        raise ValueError(
            f"HotPaths cannot serve {route.path}: it has no fast form of the dependencies "
            f"{', '.join(unknown)}; add them to FAST_DEPENDENCIES or serve the route normally"
        )
    if route.dependant.query_params or route.dependant.body_params or route.dependant.header_params:
        raise ValueError(
            f"HotPaths cannot serve {route.path}: it passes path parameters and dependencies only"
        )


def routes_of(router: APIRouter, endpoints: Sequence[Callable[..., Any]]) -> list[APIRoute]:
    """Return the router's routes that call these endpoints, in the order given.

    The router must be included in the app without a prefix of its own, so
    that its routes' paths are the paths the app serves.
    """
    routes = {route.endpoint: route for route in router.routes if isinstance(route, APIRoute)}
    missing = [endpoint.__name__ for endpoint in endpoints if endpoint not in routes]
    if missing:
        raise ValueError(f"no route of the router calls {', '.join(missing)}")
    return [routes[endpoint] for endpoint in endpoints]

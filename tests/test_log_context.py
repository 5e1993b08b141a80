"""Log fields of a context: binding, clearing, scoping to a block and to child contexts."""

from __future__ import annotations

import asyncio
import contextvars

from strongroom.base import log_context


def run_in_new_context(function: object) -> object:
    return contextvars.copy_context().run(function)  # type: ignore[arg-type]


def test_bind_adds_fields() -> None:
    def scenario() -> dict[str, object]:
        log_context.clear()
        log_context.bind(request_id="r1")
        log_context.bind(tenant="acme")
        return dict(log_context.current())

    assert run_in_new_context(scenario) == {"request_id": "r1", "tenant": "acme"}


def test_clear_drops_fields() -> None:
    def scenario() -> dict[str, object]:
        log_context.bind(request_id="r1")
        log_context.clear()
        return dict(log_context.current())

    assert run_in_new_context(scenario) == {}


def test_bound_restores_fields_after_block() -> None:
    def scenario() -> tuple[dict[str, object], dict[str, object]]:
        log_context.clear()
        log_context.bind(tenant="acme")
        with log_context.bound(job="purge", tenant="other"):
            inside = dict(log_context.current())
        return inside, dict(log_context.current())

    inside, after = run_in_new_context(scenario)  # type: ignore[misc]

    assert inside == {"tenant": "other", "job": "purge"}
    assert after == {"tenant": "acme"}


def test_child_task_binding_stays_in_child() -> None:
    async def child() -> dict[str, object]:
        log_context.bind(actor="someone")
        return dict(log_context.current())

    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        log_context.clear()
        log_context.bind(request_id="r1")
        seen_by_child = await asyncio.create_task(child())
        return seen_by_child, dict(log_context.current())

    seen_by_child, parent = asyncio.run(scenario())

    assert seen_by_child == {"request_id": "r1", "actor": "someone"}
    assert parent == {"request_id": "r1"}


def test_merge_keeps_event_keys() -> None:
    def scenario() -> dict[str, object]:
        log_context.clear()
        log_context.bind(tenant="acme", request_id="r1")
        return dict(log_context.merge_fields(None, "info", {"event": "x", "tenant": "explicit"}))

    merged = run_in_new_context(scenario)

    assert merged == {"tenant": "explicit", "request_id": "r1", "event": "x"}

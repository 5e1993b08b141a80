"""Webhooks: a tenant's subscriptions to its events, and the signed deliveries made to them.

Tenant admins subscribe a URL to event types. When an event happens, the
interface that caused it calls `events.emit` after its transaction committed,
which writes one delivery row per matching subscription and enqueues one job
per delivery. The job POSTs the signed payload, and retries with backoff until
the delivery is `delivered` or `dead`. Admins list dead deliveries and replay
them.
"""

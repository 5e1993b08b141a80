"""Exports: files a tenant admin requests, built in the background and downloaded later.

An admin requests an export of one kind (the audit trail, the tenant's
metered usage) with that kind's filters and format. The request writes an
`exports` row in the state `queued` and enqueues the tenant job
`exports.build`. The job claims the row (`running`), writes the content
into an encrypted blob of the tenant, and marks the row `ready` with the
size and SHA-256, or `failed` with a reason. A ready export can be
downloaded until it expires, `export_retention_days` after it finished; an
hourly sweep then deletes the row and its blob.

A kind is one entry of `kinds.KINDS`: its formats, a check of its filters,
and a writer of its content. Adding a kind needs nothing else.
"""

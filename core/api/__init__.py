"""The admin REST API under `/api/v3/`: authentication, resources, pagination, errors, OpenAPI.

`resource.routes` turns each declared resource into aiohttp routes; the app factory registers
them. Handlers validate input with the wire models and call the identity layer inside one store
transaction, which also receives the audit event.
"""

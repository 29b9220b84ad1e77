"""The core side of the outposts' control channel (`/ws/outpost/<uuid>/`).

The websocket endpoint, the per-instance state kept in the shared cache, the health operation
of `/api/v3/outposts/instances/<uuid>/health/`, and the fan-out of TRIGGER_UPDATE and
SESSION_END through the bus to every connected instance on every core replica.
"""

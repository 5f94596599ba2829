"""The simulated fleet (up/down/start/stop/status) — being written; only `engine` and `images` work yet."""


class FleetError(RuntimeError):
    """The fleet could not be brought into the requested state."""

"""Real services, such as PostgreSQL, that the tests start for themselves."""


class MissingService(Exception):
    """A service that the tests need is not installed on this machine."""

    def __init__(self, service: str, package: str) -> None:
        super().__init__(f"{service} not found; install the Debian package {package}")
        self.service = service
        self.package = package

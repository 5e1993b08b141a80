"""Interfaces: the command line and the HTTP API, thin layers over the domain functions."""

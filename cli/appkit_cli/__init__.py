"""The ``appkit`` command line: provisioning and admin on top of appkit's public API."""

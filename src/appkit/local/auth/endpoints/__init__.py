"""The auth service's endpoint families, one module each; :mod:`appkit.local.auth.service` composes them."""

"""Framework integrations (``appkit.integrations.fastapi``)."""

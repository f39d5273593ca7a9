"""aiohttp app factory, CLI, HTTP + Socket.IO transport and auth."""

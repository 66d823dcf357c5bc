"""aiohttp handlers and middlewares: validate, call a service or an actor, shape the reply."""

"""Channel-neutral conversations, one module a flow. `bot.flows.registry.build_router()` assembles
them; importing this package builds nothing."""

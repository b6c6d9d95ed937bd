"""Durable orchestrations and entities: one orchestration per move request,
serialized per IP by a lock entity, with each IP's audit history in an entity."""

"""Forwarders: each delivers outbox samples to one upstream, at least once, with the
sample's idempotent id so the upstream keeps each reading once."""

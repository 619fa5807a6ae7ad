"""Province–city integration (省市一体化): a city platform keeps a transactional outbox of what
it accepts and forwards it to the province through the province's push API (docs/federation.md)."""

-- A notification handed from a blocked or refusing channel to its fallback names the channel
-- it came from; such a copy is never handed on again (failover happens once).
ALTER TABLE outbox ADD COLUMN failover_from TEXT;

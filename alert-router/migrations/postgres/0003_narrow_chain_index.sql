-- Only cancelling an alert's pending escalation steps looks rows up by fingerprint; every
-- notification and every delivered step paid for a row in the old index anyway. The partial
-- index holds pending steps alone, so intake and delivery of plain notifications never touch it.
DROP INDEX outbox_chain;
CREATE INDEX outbox_pending_steps ON outbox (fingerprint) WHERE kind = 'escalate' AND state = 'pending';

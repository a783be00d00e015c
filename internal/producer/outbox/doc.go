// Package outbox owns the transactional outbox: the outbox table's row and
// the statement that writes it, which order-api's store runs in the same
// transaction as the order (Row, NewRow, InsertSQL, Insert), and the relay
// that publishes those rows to Kafka, their headers column read into Kafka
// headers (KafkaHeaders), and then moves them to outbox_published, or
// deletes them with Retention 0 (Relay), woken by a Notifier; and the rows
// the relay set aside in outbox_set_aside, which an operator lists and
// moves back (ListSetAside, RetrySetAside). Every statement on outbox,
// outbox_published and outbox_set_aside is written in this package
// (migrations aside): order-api's store runs InsertSQL within its own.
//
// The relay's guarantees (docs/design.md, invariants 2, 3 and 9):
//   - At least once: a row is marked published only after the broker
//     acknowledged it with acks=all. A crash between the two, or a produce
//     that was applied but answered with an error, publishes it again, with
//     the same event_id header.
//   - Order: one relay publishes at a time (the holder of a PostgreSQL
//     advisory lock on a dedicated connection); it publishes unpublished rows
//     in outbox id order, and retries a failed batch before anything after it,
//     reading it again from the outbox (a row deleted meanwhile is gone).
//     Each Kafka write carries at most one record batch per partition, sized
//     under the topic's max.message.bytes, so a partition can never keep a
//     later batch while an earlier one failed.
//   - One refused message blocks nothing else: a row Kafka refuses for what
//     it is (too large, invalid), found by writing the refused rows one at a
//     time, is set aside with the refusal, and so is every row of its order
//     after it, whenever written; every other order keeps flowing. A
//     refusal of the topic (authorization, unknown topic, no leader, a
//     timeout) is an outage, and sets nothing aside.
//   - Liveness: a registry or broker outage only delays publishing; the relay
//     backs off exponentially with jitter and resumes by itself. When the
//     holder dies its connection closes, PostgreSQL frees the lock, and a
//     standby takes over within LockRetryInterval.
//
// Two relays can briefly overlap only if the leader's lock connection is lost
// while it is writing a batch; the consequence is duplicates, never loss, and
// the leader stops publishing as soon as it notices.
package outbox

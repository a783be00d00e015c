package projectionstore

import "time"

// SetLockTimeout sets how long s's batches wait for a lock.
func SetLockTimeout(s *Store, d time.Duration) { s.setLockTimeout(d) }

// Exposed so tests can hold the lock an Apply of an order waits for.
var (
	LockKey       = lockKey
	LockNamespace = lockNamespace
)

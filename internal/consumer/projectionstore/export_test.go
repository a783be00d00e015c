package projectionstore

// Exposed so tests can hold the lock an Apply of an order waits for.
var (
	LockKey       = lockKey
	LockNamespace = lockNamespace
)

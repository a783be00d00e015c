package outbox

// What the package's external tests reach inside.
var (
	PrepareSession = prepareSession
	SelectBatchSQL = selectBatchSQL
)

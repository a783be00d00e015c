package outbox

// What the package's external tests reach inside.
var (
	PrepareSession  = prepareSession
	ArchiveConflict = archiveConflict

	SelectBatchSQL          = selectBatchSQL
	SelectBatchReplacingSQL = selectBatchReplacingSQL
	MarkSQL                 = markSQL
	MarkReplacingSQL        = markReplacingSQL
	SelectBatchDeletingSQL  = selectBatchDeletingSQL
	DeleteSQL               = deleteSQL
	PurgeSQL                = purgeSQL
	SetAsideSQL             = setAsideSQL
	ListSetAsideSQL         = listSetAsideSQL
	RetrySQL                = retrySQL
)

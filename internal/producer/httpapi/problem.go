package httpapi

import "github.com/ordersonkafka/orders/internal/platform/problem"

var writeProblem = problem.Write

const (
	typeMalformed    = problem.TypeMalformed
	typeTooLarge     = problem.TypeTooLarge
	typeMediaType    = problem.TypeMediaType
	typeValidation   = problem.TypeValidation
	typeNotFound     = problem.TypeNotFound
	typeTransition   = problem.TypeTransition
	typePrecondition = problem.TypePrecondition
	typeIdempotency  = problem.TypeIdempotency
	typeInternal     = problem.TypeInternal
)

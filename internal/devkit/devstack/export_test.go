package devstack

import (
	"context"
	"path/filepath"
	"strings"
)

// StartThrowawayForTest starts the throwaway cluster whatever answers on
// 5432, and returns its directory too.
func StartThrowawayForTest(ctx context.Context, logf func(string, ...any)) (dsn, dir string, stop func() error, err error) {
	var logged string
	dsn, stop, err = startThrowaway(ctx, func(f string, a ...any) {
		if strings.Contains(f, "throwaway cluster in") && len(a) == 1 {
			logged, _ = a[0].(string)
		}
		logf(f, a...)
	})
	return dsn, filepath.Clean(logged), stop, err
}

var ProbeForTest = probe

// StartKeptForTest starts (or starts again) the cluster kept in dir,
// whatever answers on 5432.
func StartKeptForTest(ctx context.Context, logf func(string, ...any), dir string) (dsn string, stop func() error, err error) {
	return startCluster(ctx, logf, dir, false)
}

package devstack

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/ordersonkafka/orders/internal/devkit/schemaregistry"
)

// loadRegistry restores the registry kept at path, or returns an empty one
// when there is no file yet.
func loadRegistry(path string) (*schemaregistry.Registry, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return schemaregistry.New(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("schema registry: read its state: %w", err)
	}
	reg, err := schemaregistry.Restore(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return reg, nil
}

// persistChanges saves reg to path after every request that may change it
// (any method but GET and HEAD) and succeeded, before the answer leaves:
// a client told "id 3" finds id 3 after a restart. Changes are rare (a
// deployment registers a schema or sets a level), so the whole state is
// written each time, to a temporary file renamed over the old one.
func persistChanges(reg *schemaregistry.Registry, path string, next http.Handler) http.Handler {
	var mu sync.Mutex // one save at a time, in the order the changes were made
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet || req.Method == http.MethodHead {
			next.ServeHTTP(w, req)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(rec, req)
		if rec.status < 300 {
			if err := saveRegistry(reg, path); err != nil {
				w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = fmt.Fprintf(w, `{"error_code":50001,"message":%q}`, "Error in the backend data store: "+err.Error())
				return
			}
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
	})
}

func saveRegistry(reg *schemaregistry.Registry, path string) error {
	data, err := reg.MarshalJSON()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".registry-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// recorder holds a response until the change it reports is saved.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.body.Write(p)
}

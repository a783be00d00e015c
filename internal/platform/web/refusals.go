package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/ordersonkafka/orders/internal/text"
)

// methods are the standard methods a route can be registered for, in the
// order Allow lists them.
var methods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
}

// Allowed returns the methods the router serving r (a chi router) routes for
// r's path; HEAD counts wherever GET does, as both APIs answer HEAD like GET
// (chi's middleware.GetHead).
func Allowed(r *http.Request) []string {
	rctx := chi.RouteContext(r.Context())
	if rctx == nil || rctx.Routes == nil {
		return nil
	}
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	var allowed []string
	get := false
	for _, m := range methods {
		ok := rctx.Routes.Match(chi.NewRouteContext(), m, path)
		if m == http.MethodGet {
			get = ok
		}
		if ok || m == http.MethodHead && get {
			allowed = append(allowed, m)
		}
	}
	return allowed
}

// MethodNotAllowed is both APIs' chi MethodNotAllowed handler. It answers 405
// with the Allow header RFC 9110 requires (chi only sets it when its own
// handler is used), or 404 when no method is routed for the path at all
// (chi calls this handler for any method it does not know, whatever the
// path).
func MethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	allowed := Allowed(r)
	if len(allowed) == 0 {
		Problem(w, r, http.StatusNotFound, TypeNotFound, "Not Found", "no such resource", nil)
		return
	}
	allow := strings.Join(allowed, ", ")
	w.Header().Set("Allow", allow)
	Problem(w, r, http.StatusMethodNotAllowed, TypeMethod, "Method Not Allowed",
		quoteMethod(r.Method)+" is not allowed here; allowed: "+allow, nil)
}

// quoteMethod echoes a method (an HTTP token: the server refuses anything
// else) as is, unless it is long.
func quoteMethod(m string) string {
	if len(m) <= 32 {
		return m
	}
	return text.Quote(m, 32)
}

// ValidText refuses, with 400, a request whose path or query string is not
// text: a parameter (name or value) that, percent-decoded, is not valid
// UTF-8 or holds NUL, or a query string that is not percent-encoded
// properly. Such a parameter can match nothing the APIs store (text.Valid),
// and PostgreSQL refuses it in a query as an error, not as "no match"; so it
// never reaches the store.
func ValidText(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !text.Valid(r.URL.Path) {
			Problem(w, r, http.StatusBadRequest, TypeMalformed, "Bad Request",
				"the path is not valid text: percent-encoded bytes must be UTF-8, without NUL", nil)
			return
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			Problem(w, r, http.StatusBadRequest, TypeMalformed, "Bad Request",
				"the query string is not properly percent-encoded", nil)
			return
		}
		for name, values := range q {
			bad := !text.Valid(name)
			for _, v := range values {
				bad = bad || !text.Valid(v)
			}
			if bad {
				Problem(w, r, http.StatusBadRequest, TypeMalformed, "Bad Request",
					"query parameter "+text.Quote(name, 32)+" is not valid text: percent-encoded bytes must be UTF-8, without NUL", nil)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

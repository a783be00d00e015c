package eventcodec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/riferrei/srclient"

	"github.com/ordersonkafka/orders/schemas"
)

// Gate compares the schemas in schemas/ with a registry: the schema gate a
// pipeline runs before a release (`order-api schemas check`) and the
// registration of what is missing (`order-api schemas register`) where
// services may not register at run time.
type Gate struct {
	reg  *srclient.SchemaRegistryClient
	http *http.Client
	url  string
	auth RegistryAuth
}

// GateConfig configures a Gate.
type GateConfig struct {
	URL     string
	Auth    RegistryAuth
	Timeout time.Duration // per registry call; default DefaultRegistryTimeout
}

// NewGate returns a Gate; it contacts the registry only when asked.
func NewGate(cfg GateConfig) (*Gate, error) {
	reg, hc, err := newRegistryClient(cfg.URL, cfg.Auth, nil, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	return &Gate{reg: reg, http: hc, url: strings.TrimRight(cfg.URL, "/"), auth: cfg.Auth}, nil
}

// VersionStatus is one version of schemas/ as the registry has it.
type VersionStatus struct {
	Version    int // N of order_event.vN.avsc
	Registered bool
	ID         int // the registry's schema ID, if registered
	Subject    int // its version under the subject, if registered
}

// Report is what the gate found for one subject.
type Report struct {
	Subject       string
	SubjectExists bool
	Level         string // the level the registry applies to the subject
	LevelIsGlobal bool   // the subject has no level of its own
	Versions      []VersionStatus
	// Compatible says whether the newest version may be registered under
	// Level, with the registry's reasons when it may not.
	Compatible bool
	Reasons    []string
	// Foreign are the subject's versions that are none of schemas/: another
	// writer registered them, most often a newer release, whose events this
	// one's consumer reads only as far as its schema resolves them.
	Foreign []SubjectVersion
}

// SubjectVersion is a version of a subject that schemas/ does not have.
type SubjectVersion struct {
	Version int // its version under the subject
	ID      int // the registry's schema ID
	// Newer says it came after every version of schemas/ the subject
	// holds (all of them, when it holds none): a newer writer exists.
	Newer bool
}

// Check reports each version of schemas/ under subject, each version the
// subject holds that schemas/ lacks, and whether the newest is compatible
// with what the subject holds, as the registry judges it. An error is a
// registry that cannot be asked, not a verdict.
func (g *Gate) Check(ctx context.Context, subject string) (Report, error) {
	var err error
	rep := Report{Subject: subject, SubjectExists: true}
	for _, s := range schemas.All() {
		st := VersionStatus{Version: s.Version}
		got, err := g.reg.LookupSchema(subject, s.Text, srclient.Avro)
		switch registryCode(err) {
		case 0:
			if err != nil {
				return rep, fmt.Errorf("schema registry: look up v%d under %s: %w", s.Version, subject, err)
			}
			st.Registered, st.ID, st.Subject = true, got.ID(), got.Version()
		case 40401:
			rep.SubjectExists = false
		case 40403:
		default:
			return rep, fmt.Errorf("schema registry: look up v%d under %s: %w", s.Version, subject, err)
		}
		rep.Versions = append(rep.Versions, st)
	}
	if rep.SubjectExists {
		if rep.Foreign, err = g.foreign(subject, rep.Versions); err != nil {
			return rep, err
		}
	}
	level, global, err := g.level(subject)
	if err != nil {
		return rep, err
	}
	rep.Level, rep.LevelIsGlobal = level, global
	if !rep.SubjectExists {
		rep.Compatible = true // the newest would be the subject's first version
		return rep, nil
	}
	rep.Compatible, rep.Reasons, err = g.compatible(ctx, subject, schemas.Latest().Text)
	return rep, err
}

// foreign returns the versions of subject that are none of ours, the
// versions of schemas/ as the registry holds them.
func (g *Gate) foreign(subject string, ours []VersionStatus) ([]SubjectVersion, error) {
	all, err := g.reg.GetSchemaVersions(subject)
	if registryCode(err) == 40401 { // deleted since the lookups
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("schema registry: list the versions of %s: %w", subject, err)
	}
	known, newest := map[int]bool{}, 0
	for _, v := range ours {
		if v.Registered {
			known[v.Subject], newest = true, max(newest, v.Subject)
		}
	}
	var out []SubjectVersion
	for _, v := range all {
		if known[v] {
			continue
		}
		s, err := g.reg.GetSchemaByVersion(subject, v)
		if err != nil {
			return nil, fmt.Errorf("schema registry: read version %d of %s: %w", v, subject, err)
		}
		out = append(out, SubjectVersion{Version: v, ID: s.ID(), Newer: v > newest})
	}
	return out, nil
}

// level is the subject's compatibility level, or the global one when the
// subject has none of its own (40408).
func (g *Gate) level(subject string) (string, bool, error) {
	l, err := g.reg.GetCompatibilityLevel(subject, false)
	if registryCode(err) == 40408 || registryCode(err) == 40401 {
		l, err = g.reg.GetGlobalCompatibilityLevel()
		if err != nil {
			return "", true, fmt.Errorf("schema registry: read the global compatibility level: %w", err)
		}
		return string(*l), true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("schema registry: read the compatibility level of %s: %w", subject, err)
	}
	return string(*l), false, nil
}

// compatible asks the registry whether text may join subject, with its
// reasons: POST /compatibility/subjects/{subject}/versions?verbose=true,
// which checks against the versions the subject's level names. srclient
// has no call that returns the reasons, so this one request is made here,
// with the client's transport and credentials.
func (g *Gate) compatible(ctx context.Context, subject, text string) (bool, []string, error) {
	body, _ := json.Marshal(map[string]string{"schema": text})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		g.url+"/compatibility/subjects/"+url.PathEscape(subject)+"/versions?verbose=true", bytes.NewReader(body))
	if err != nil {
		return false, nil, err
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	switch {
	case g.auth.BasicAuthUserInfo != "":
		user, pass, _ := strings.Cut(g.auth.BasicAuthUserInfo, ":")
		req.SetBasicAuth(user, pass)
	case g.auth.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+g.auth.BearerToken)
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return false, nil, fmt.Errorf("schema registry: check compatibility under %s: %w", subject, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, nil, fmt.Errorf("schema registry: check compatibility under %s: %w", subject, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code    int    `json:"error_code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &e) != nil || e.Code == 0 {
			e.Code, e.Message = resp.StatusCode, http.StatusText(resp.StatusCode)
		}
		return false, nil, fmt.Errorf("schema registry: check compatibility under %s: HTTP %d, error %d: %s", subject, resp.StatusCode, e.Code, e.Message)
	}
	var ans struct {
		IsCompatible *bool    `json:"is_compatible"`
		Messages     []string `json:"messages"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || ans.IsCompatible == nil {
		return false, nil, fmt.Errorf("schema registry: check compatibility under %s: not a compatibility answer", subject)
	}
	return *ans.IsCompatible, ans.Messages, nil
}

// Register sets subject's level to the policy's (schemas.Compatibility) and
// registers every version of schemas/ it lacks, oldest first, returning
// them all as registered.
func (g *Gate) Register(ctx context.Context, subject string) ([]VersionStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, err := register(g.reg, subject, schemas.Compatibility, schemas.Latest().Version)
	if err != nil {
		return nil, err
	}
	var out []VersionStatus
	for _, s := range schemas.All() {
		got, err := g.reg.LookupSchema(subject, s.Text, srclient.Avro)
		if err != nil {
			return nil, fmt.Errorf("schema registry: look up v%d under %s: %w", s.Version, subject, err)
		}
		out = append(out, VersionStatus{Version: s.Version, Registered: true, ID: int(ids[s.Version]), Subject: got.Version()})
	}
	return out, nil
}

// ErrIncompatible is the gate's verdict when the newest schema may not be
// registered.
var ErrIncompatible = errors.New("the newest schema is not compatible with the subject")

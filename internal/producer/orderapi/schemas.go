package orderapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/schemas"
)

func registryAuth(cfg Config) eventcodec.RegistryAuth {
	return eventcodec.RegistryAuth{BasicAuthUserInfo: cfg.SchemaRegistryUserInfo,
		BearerToken: cfg.SchemaRegistryBearerToken, TLSCAFile: cfg.SchemaRegistryCAFile}
}

func gate(cfg Config) (*eventcodec.Gate, string, error) {
	g, err := eventcodec.NewGate(eventcodec.GateConfig{URL: cfg.SchemaRegistryURL, Auth: registryAuth(cfg), Timeout: cfg.SchemaRegistryTimeout})
	return g, eventcodec.Subject(cfg.Topic), err
}

// ErrLevelMismatch: the subject exists at another compatibility level than
// the policy's, so the registry's verdict is not the one a deploy meets.
var ErrLevelMismatch = errors.New("the subject's compatibility level is not the policy's")

// ErrForeignVersions: the subject holds versions schemas/ does not have
// (another writer, most often a newer release, registered them). It is an
// error only for a strict check: a deploy of this release would run beside
// a newer writer, or after it.
var ErrForeignVersions = errors.New("the subject holds versions schemas/ does not have")

// SchemasCheck is `order-api schemas check [-strict]`, the schema gate: it
// prints each version of schemas/, whether the registry at
// SCHEMA_REGISTRY_URL has it (and its ID), each version the subject holds
// that schemas/ does not (a newer writer's), and whether the newest is
// compatible with the subject under the subject's level, with the
// registry's reasons. It returns ErrLevelMismatch when the subject is at
// another level than the policy's (a deploy sets it first),
// eventcodec.ErrIncompatible when the newest is not compatible, with
// strict ErrForeignVersions when the subject holds versions schemas/ does
// not, and any failure to ask.
func SchemasCheck(ctx context.Context, cfg Config, w io.Writer, strict bool) error {
	g, subject, err := gate(cfg)
	if err != nil {
		return err
	}
	rep, err := g.Check(ctx, subject)
	if err != nil {
		return err
	}
	level := rep.Level
	if rep.LevelIsGlobal {
		level += " (the registry's global level: the subject has none of its own)"
	}
	fmt.Fprintf(w, "subject %s at %s\n", subject, redactURL(cfg.SchemaRegistryURL))
	fmt.Fprintf(w, "  compatibility: %s\n", level)
	missing := 0
	for _, v := range rep.Versions {
		if v.Registered {
			fmt.Fprintf(w, "  v%d  registered   id %d, subject version %d\n", v.Version, v.ID, v.Subject)
		} else {
			missing++
			fmt.Fprintf(w, "  v%d  missing\n", v.Version)
		}
	}
	latest := schemas.Latest().Version
	for _, f := range rep.Foreign {
		how := "older than the versions of schemas/ it holds"
		if f.Newer {
			how = "newer than schemas/: a newer writer registered it"
		}
		fmt.Fprintf(w, "  subject version %d  id %d: NOT in schemas/ (%s)\n", f.Version, f.ID, how)
	}
	switch {
	case !rep.SubjectExists:
		fmt.Fprintf(w, "newest (v%d): compatible: the subject does not exist yet\n", latest)
	case rep.Compatible:
		fmt.Fprintf(w, "newest (v%d): compatible with the subject under %s\n", latest, rep.Level)
	default:
		fmt.Fprintf(w, "newest (v%d): NOT compatible with the subject under %s:\n", latest, rep.Level)
		for _, r := range rep.Reasons {
			fmt.Fprintf(w, "  - %s\n", strings.TrimSpace(r))
		}
	}
	if rep.SubjectExists && rep.Level != schemas.Compatibility {
		// A deploy sets the policy's level before it registers, so a verdict
		// under another level is not the one it meets: align it, then ask.
		fmt.Fprintf(w, "the subject's level is %s, not the policy's %s: a deploy sets it first (the relay, `order-api schemas register`), so align it and check again\n",
			rep.Level, schemas.Compatibility)
		return fmt.Errorf("%w: %s is at %s, the policy is %s", ErrLevelMismatch, subject, rep.Level, schemas.Compatibility)
	}
	if !rep.Compatible {
		return fmt.Errorf("%w %s (v%d under %s)", eventcodec.ErrIncompatible, subject, latest, rep.Level)
	}
	if n := len(rep.Foreign); n > 0 {
		fmt.Fprintf(w, "%d version(s) of the subject are not in schemas/: this release is older than the subject's writers, or beside another's; its consumer reads their events only as far as schemas/ v%d resolves them\n", n, latest)
		if strict {
			return fmt.Errorf("%w: %s holds %d (-strict)", ErrForeignVersions, subject, n)
		}
	}
	if missing > 0 {
		fmt.Fprintf(w, "%d version(s) missing: the relay registers them on first use, or run `order-api schemas register` (needed with SCHEMA_AUTO_REGISTER=false)\n", missing)
	}
	return nil
}

// SchemasRegister is `order-api schemas register`: it sets the subject's
// level to the policy's and registers every version it lacks, oldest first,
// for pipelines that do not let services register at run time.
func SchemasRegister(ctx context.Context, cfg Config, w io.Writer) error {
	g, subject, err := gate(cfg)
	if err != nil {
		return err
	}
	got, err := g.Register(ctx, subject)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "subject %s at %s: compatibility %s\n", subject, redactURL(cfg.SchemaRegistryURL), schemas.Compatibility)
	for _, v := range got {
		fmt.Fprintf(w, "  v%d  registered   id %d, subject version %d\n", v.Version, v.ID, v.Subject)
	}
	return nil
}

// redactURL hides a password given in the URL itself.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(the SCHEMA_REGISTRY_URL given)"
	}
	return u.Redacted()
}

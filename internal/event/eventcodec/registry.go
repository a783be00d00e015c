package eventcodec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// registryClient is the few Confluent Schema Registry REST calls we make.
type registryClient struct {
	base    string
	http    *http.Client
	timeout time.Duration
}

func newRegistryClient(url string, hc *http.Client, timeout time.Duration) (*registryClient, error) {
	if url == "" {
		return nil, errors.New("schema registry URL is empty")
	}
	if hc == nil {
		hc = &http.Client{}
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &registryClient{base: strings.TrimRight(url, "/"), http: hc, timeout: timeout}, nil
}

// registryError is an error answer of the registry, with its error_code
// (40403 "schema not found", 409 "incompatible", ...).
type registryError struct {
	Status int
	Code   int    `json:"error_code"`
	Msg    string `json:"message"`
}

func (e *registryError) Error() string {
	return fmt.Sprintf("schema registry: HTTP %d, error_code %d: %s", e.Status, e.Code, e.Msg)
}

const contentType = "application/vnd.schemaregistry.v1+json"

// call sends body (nil for none) as JSON and decodes the answer into out.
func (c *registryClient) call(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", contentType)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("schema registry %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("schema registry %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		re := &registryError{Status: resp.StatusCode}
		if json.Unmarshal(data, re) != nil || re.Msg == "" {
			re.Msg = strings.TrimSpace(string(data))
		}
		return re
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("schema registry %s %s: malformed answer: %w", method, path, err)
	}
	return nil
}

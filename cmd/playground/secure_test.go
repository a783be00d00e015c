package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/config"
)

// The secure playground (make run-secure) works as its banner says: the
// curls it prints place, pay and read an order through the secured broker
// and registry with the token it prints; without the token the APIs answer
// 401; the variables it writes let an operator command reach the broker,
// which refuses a plain-text client; the registry refuses a client without
// its credentials; and the secrets' directory is gone once it stops.
func TestTheSecurePlaygroundWorksAsPrinted(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, "secure")
	opts.secure = true
	p := startPlayground(t, opts)
	out := p.banner.String()

	token := regexp.MustCompile(`export TOKEN='([^']+)'`).FindStringSubmatch(out)
	if token == nil {
		t.Fatalf("the banner sets no TOKEN:\n%s", out)
	}
	readToken := regexp.MustCompile(`export READ_TOKEN='([^']+)'`).FindStringSubmatch(out)
	if readToken == nil {
		t.Fatalf("the banner sets no READ_TOKEN:\n%s", out)
	}
	vars := map[string]string{"TOKEN": token[1], "READ_TOKEN": readToken[1]}
	cmds := curls(t, out, vars)
	if len(cmds) < 4 {
		t.Fatalf("the banner has %d curl commands, want place, pay, read and a write with the read-only token:\n%s", len(cmds), out)
	}
	place, pay, read := cmds[0], cmds[1], cmds[2]

	if st, _ := place.without("Authorization").do(t); st != 401 {
		t.Fatalf("POST /orders without the token: %d, want 401: authentication is off", st)
	}
	st, resp := place.do(t)
	if st != 201 {
		t.Fatalf("the banner's place curl: %d %s", st, resp.body)
	}
	id := strings.TrimPrefix(resp.header.Get("Location"), "/orders/")
	if st, resp := pay.with("<id>", id).do(t); st != 200 {
		t.Fatalf("the banner's pay curl: %d %s", st, resp.body)
	}
	read = read.with("<id>", id)
	if st, _ := read.without("Authorization").do(t); st != 401 {
		t.Fatalf("GET the projection without the token: %d, want 401", st)
	}
	stacktest.WaitFor(t, "the paid order in the projection, through the banner's read curl", 60*time.Second, func() bool {
		st, resp := read.do(t)
		var o struct{ Status string }
		return st == 200 && json.Unmarshal([]byte(resp.body), &o) == nil && o.Status == "paid"
	})
	// A write with the read-only token is 403, and changes nothing.
	refused := cmds[3].with("<id>", id)
	if st, resp := refused.do(t); st != 403 || !strings.Contains(resp.header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Fatalf("the banner's write with the read-only token: %d %q %s, want 403 insufficient_scope", st, resp.header.Get("WWW-Authenticate"), resp.body)
	}
	if st, resp := read.do(t); st != 200 || !strings.Contains(resp.body, `"status":"paid"`) {
		t.Fatalf("after the refused cancel: %d %s, want the order still paid", st, resp.body)
	}

	// kcat's way in: the banner's plain gateway answers a client without
	// TLS or SASL, with metadata that names the gateway, and the events.
	gw := regexp.MustCompile(`kcat -b (\S+) -t order-events -C`).FindStringSubmatch(out)
	if gw == nil {
		t.Fatalf("the banner gives kcat no broker:\n%s", out)
	}
	plain, err := kafka.Dial("tcp", gw[1])
	if err != nil {
		t.Fatal(err)
	}
	brokers, err := plain.Brokers()
	plain.Close()
	if err != nil || len(brokers) != 1 || net.JoinHostPort(brokers[0].Host, strconv.Itoa(brokers[0].Port)) != gw[1] {
		t.Fatalf("metadata through the gateway %s: %+v %v", gw[1], brokers, err)
	}

	// The inspector page reads the secured broker and registry as the
	// consumer does: the order's trail, its events on the topic, the subject.
	page := regexp.MustCompile(`Inspector\s+(http://\S+)`).FindStringSubmatch(out)
	if page == nil {
		t.Fatalf("the banner links no inspector page:\n%s", out)
	}
	for path, want := range map[string][]string{
		"/":             {"order-events-value", "order-events.dlq", id},
		"/orders/" + id: {"paid", "applied", "PAID"},
	} {
		st, resp := curlCmd{method: "GET", url: page[1] + path}.do(t)
		if st != 200 {
			t.Fatalf("inspector %s: %d %s", path, st, resp.body)
		}
		for _, w := range want {
			if !strings.Contains(resp.body, w) {
				t.Errorf("inspector %s does not show %q", path, w)
			}
		}
	}

	// The variables the banner points to run an operator command against
	// the secured broker; a plain-text client is refused.
	envFile := regexp.MustCompile(`\. (\S+order-consumer\.env);`).FindStringSubmatch(out)
	if envFile == nil {
		t.Fatalf("the banner names no order-consumer.env:\n%s", out)
	}
	env := readEnvFile(t, envFile[1])
	cfg, err := config.Load[orderconsumer.Config](func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer lcancel()
	if entries, err := orderconsumer.ListDLQ(lctx, cfg, deadletter.Filter{}); err != nil || len(entries) != 0 {
		t.Fatalf("dlq list with the written variables: %v %v", entries, err)
	}
	env["KAFKA_SECURITY_PROTOCOL"] = "PLAINTEXT"
	if plain, err := config.Load[orderconsumer.Config](func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	} else if _, err := orderconsumer.ListDLQ(lctx, plain, deadletter.Filter{}); err == nil {
		t.Error("a plain-text client reached the secure playground's broker")
	}

	// The registry takes HTTPS with the CA and the credentials only.
	ca, err := os.ReadFile(env["SCHEMA_REGISTRY_TLS_CA_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	user, pass, _ := strings.Cut(env["SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"], ":")
	for _, tc := range []struct {
		auth bool
		want int
	}{{false, 401}, {true, 200}} {
		req, _ := http.NewRequest("GET", env["SCHEMA_REGISTRY_URL"]+"/subjects/order-events-value/versions", nil)
		if tc.auth {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("registry with credentials=%v: %d, want %d", tc.auth, resp.StatusCode, tc.want)
		}
	}

	props, err := os.ReadFile(filepath.Join(filepath.Dir(envFile[1]), "client.properties"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512",
		`password="` + env["KAFKA_SASL_PASSWORD"] + `";`, "ssl.truststore.location=" + env["KAFKA_TLS_CA_FILE"],
		"bootstrap.servers=" + env["KAFKA_BROKERS"], "basic.auth.user.info=" + env["SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"]} {
		if !strings.Contains(string(props), want) {
			t.Errorf("client.properties lacks %q", want)
		}
	}

	p.stop()
	if _, err := os.Stat(filepath.Dir(envFile[1])); !os.IsNotExist(err) {
		t.Errorf("the secrets' directory outlives the playground: %v", err)
	}
}

// curlCmd is a curl command line of the banner, as a request.
type curlCmd struct {
	method, url, body string
	headers           [][2]string
}

type reply struct {
	header http.Header
	body   string
}

func (c curlCmd) with(old, new string) curlCmd {
	c.url = strings.ReplaceAll(c.url, old, new)
	return c
}

func (c curlCmd) without(header string) curlCmd {
	var hs [][2]string
	for _, h := range c.headers {
		if !strings.EqualFold(h[0], header) {
			hs = append(hs, h)
		}
	}
	c.headers = hs
	return c
}

func (c curlCmd) do(t *testing.T) (int, reply) {
	t.Helper()
	req, err := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range c.headers {
		req.Header.Add(h[0], h[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, reply{resp.Header, string(b)}
}

// curls parses the banner's curl commands (-s, -i, -X, -H, -d; a trailing
// backslash continues a line) as a POSIX shell would, expanding vars inside
// double quotes.
func curls(t *testing.T, banner string, vars map[string]string) []curlCmd {
	t.Helper()
	var cmds []curlCmd
	var line string
	sc := bufio.NewScanner(strings.NewReader(banner))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if line == "" && !strings.HasPrefix(l, "curl ") {
			continue
		}
		if strings.HasSuffix(l, `\`) {
			line += strings.TrimSuffix(l, `\`) + " "
			continue
		}
		line += l
		if strings.Contains(line, ";") { // "curl a; curl b": the metrics line
			line = ""
			continue
		}
		words := shellWords(t, line, vars)
		line = ""
		c := curlCmd{method: "GET"}
		for i := 1; i < len(words); i++ {
			switch w := words[i]; w {
			case "-s", "-i", "-si":
			case "-X":
				i++
				c.method = words[i]
			case "-H":
				i++
				k, v, _ := strings.Cut(words[i], ":")
				c.headers = append(c.headers, [2]string{k, strings.TrimSpace(v)})
			case "-d":
				i++
				c.body, c.method = words[i], "POST"
			default:
				if strings.HasPrefix(w, "-") {
					t.Fatalf("curl option %s in the banner is not understood by this test", w)
				}
				c.url = w
			}
		}
		cmds = append(cmds, c)
	}
	return cmds
}

func shellWords(t *testing.T, s string, vars map[string]string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote == '\'' && ch == '\'', quote == '"' && ch == '"':
			quote = 0
		case quote == '\'':
			w.WriteByte(ch)
		case quote == '"' && ch == '$':
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z') {
				j++
			}
			v, ok := vars[s[i+1:j]]
			if !ok {
				t.Fatalf("the banner uses $%s, which it does not set", s[i+1:j])
			}
			w.WriteString(v)
			i = j - 1
		case quote == '"':
			w.WriteByte(ch)
		case ch == '\'' || ch == '"':
			quote, in = ch, true
		case ch == ' ':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteByte(ch)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// readEnvFile reads the K='V' lines of a file the playground wrote.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.HasPrefix(l, "#") {
			continue
		}
		words := shellWords(t, v, nil)
		if len(words) != 1 {
			t.Fatalf("%s: %q is not one quoted value", path, l)
		}
		env[k] = words[0]
	}
	return env
}

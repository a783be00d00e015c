package devstack

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Gateway is a plain-text listener in front of a secured broker, for the
// clients that cannot log in to kfake (librdkafka's, such as kcat, want a
// SaslHandshake version kfake does not offer). Each connection it accepts
// is carried over TLS to the broker, logged in there with SCRAM-SHA-512 on
// the client's behalf, and then relayed as it is — but for the broker
// addresses in Metadata and FindCoordinator answers, which name the
// gateway, so that the client stays on it. It listens on 127.0.0.1 only:
// whoever reaches it acts as the user it logs in as.
type Gateway struct {
	ln       net.Listener
	upstream string
	tls      *tls.Config
	user     string
	password string

	wg sync.WaitGroup
}

// StartGateway listens on addr ("127.0.0.1:0" picks a port) for upstream.
func StartGateway(addr, upstream string, tlsConfig *tls.Config, user, password string) (*Gateway, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kafka gateway: listen on %s: %w", addr, err)
	}
	g := &Gateway{ln: ln, upstream: upstream, tls: tlsConfig, user: user, password: password}
	g.wg.Add(1)
	go g.accept()
	return g, nil
}

// Addr is the gateway's host:port.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

// Close stops accepting; connections under way end with their peers.
func (g *Gateway) Close() {
	g.ln.Close()
	g.wg.Wait()
}

func (g *Gateway) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		go g.serve(c)
	}
}

func (g *Gateway) serve(client net.Conn) {
	defer client.Close()
	d := &net.Dialer{Timeout: 10 * time.Second}
	up, err := tls.DialWithDialer(d, "tcp", g.upstream, g.tls)
	if err != nil {
		return
	}
	defer up.Close()
	if err := g.login(up); err != nil {
		return
	}
	host, port, _ := net.SplitHostPort(g.Addr())
	p, _ := strconv.Atoi(port)

	var mu sync.Mutex
	asked := map[int32]kmsg.Request{} // correlation ID → the request, for the answers rewritten
	done := make(chan struct{})
	go func() { // client → broker, as it is
		defer close(done)
		for {
			frame, err := readFrame(client)
			if err != nil {
				up.Close()
				return
			}
			if len(frame) >= 8 {
				key, version := int16(binary.BigEndian.Uint16(frame[0:])), int16(binary.BigEndian.Uint16(frame[2:]))
				if key == kmsg.Metadata.Int16() || key == kmsg.FindCoordinator.Int16() {
					req := kmsg.RequestForKey(key)
					req.SetVersion(version)
					mu.Lock()
					asked[int32(binary.BigEndian.Uint32(frame[4:]))] = req
					mu.Unlock()
				}
			}
			if _, err := up.Write(sizePrefixed(frame)); err != nil {
				return
			}
		}
	}()
	for { // broker → client, broker addresses rewritten
		frame, err := readFrame(up)
		if err != nil {
			break
		}
		if len(frame) >= 4 {
			id := int32(binary.BigEndian.Uint32(frame))
			mu.Lock()
			req, ok := asked[id]
			delete(asked, id)
			mu.Unlock()
			if ok {
				if rewritten, err := rewrite(req, frame, host, int32(p)); err == nil {
					frame = rewritten
				}
			}
		}
		if _, err := client.Write(sizePrefixed(frame)); err != nil {
			break
		}
	}
	client.Close()
	<-done
}

// rewrite points the brokers of a Metadata or FindCoordinator answer at
// host:port.
func rewrite(req kmsg.Request, frame []byte, host string, port int32) ([]byte, error) {
	resp := req.ResponseKind()
	body := frame[4:]
	if resp.IsFlexible() { // response header v1: a tag buffer after the correlation ID
		if len(body) < 1 || body[0] != 0 {
			return nil, errors.New("tagged response header")
		}
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, err
	}
	switch r := resp.(type) {
	case *kmsg.MetadataResponse:
		for i := range r.Brokers {
			r.Brokers[i].Host, r.Brokers[i].Port = host, port
		}
	case *kmsg.FindCoordinatorResponse:
		if r.Host != "" {
			r.Host, r.Port = host, port
		}
		for i := range r.Coordinators {
			r.Coordinators[i].Host, r.Coordinators[i].Port = host, port
		}
	}
	out := append([]byte(nil), frame[:4]...)
	if resp.IsFlexible() {
		out = append(out, 0)
	}
	return resp.AppendTo(out), nil
}

// login authenticates conn with SCRAM-SHA-512 (SaslHandshake v1, then
// SaslAuthenticate v1 rounds), before any of the client's requests.
func (g *Gateway) login(conn net.Conn) error {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetDeadline(time.Time{})
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("playground-gateway"))
	var corr int32
	roundTrip := func(req kmsg.Request) (kmsg.Response, error) {
		corr++
		if _, err := conn.Write(f.AppendRequest(nil, req, corr)); err != nil {
			return nil, err
		}
		frame, err := readFrame(conn)
		if err != nil {
			return nil, err
		}
		if len(frame) < 4 {
			return nil, errors.New("short answer")
		}
		resp := req.ResponseKind()
		return resp, resp.ReadFrom(frame[4:])
	}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = "SCRAM-SHA-512"
	r, err := roundTrip(hs)
	if err != nil {
		return err
	}
	if code := r.(*kmsg.SASLHandshakeResponse).ErrorCode; code != 0 {
		return fmt.Errorf("SaslHandshake: error %d", code)
	}
	mech, err := scram.Mechanism(scram.SHA512, g.user, g.password)
	if err != nil {
		return err
	}
	sm, msg, err := mech.Start(context.Background())
	if err != nil {
		return err
	}
	for {
		auth := kmsg.NewPtrSASLAuthenticateRequest()
		auth.SetVersion(1)
		auth.SASLAuthBytes = msg
		r, err := roundTrip(auth)
		if err != nil {
			return err
		}
		ar := r.(*kmsg.SASLAuthenticateResponse)
		if ar.ErrorCode != 0 {
			return fmt.Errorf("SaslAuthenticate: error %d", ar.ErrorCode)
		}
		done, next, err := sm.Next(context.Background(), ar.SASLAuthBytes)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		msg = next
	}
}

// readFrame reads one size-prefixed Kafka frame, without its size.
func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 256<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

func sizePrefixed(frame []byte) []byte {
	out := make([]byte, 4, 4+len(frame))
	binary.BigEndian.PutUint32(out, uint32(len(frame)))
	return append(out, frame...)
}

package devstack

import (
	"fmt"
	"net"
	"sync"
)

// Switch stands between clients and a TCP server (PostgreSQL, the Schema
// Registry) and can make that server hang: Hang makes it a peer that
// accepts connections and never answers, Resume a working one again. It is
// what a frozen server, a full accept queue behind a load balancer or a
// network that drops packets look like to a client: connect succeeds, then
// silence, with no error to react to.
//
// A connection open when Hang is called, or made while hung, stays silent
// for good, even after Resume: its packets are lost, as in a partition whose
// connections died, so only a deadline of the client frees a call waiting
// on it. Connections made after Resume reach the server.
type Switch struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	hung   bool
	closed bool
	conns  map[*switched]struct{}
	wg     sync.WaitGroup
}

// switched is one client connection and, unless hung, its server's.
type switched struct {
	client, server net.Conn
	dead           chan struct{} // closed once the connection hangs
	once           sync.Once
}

// silence makes c hang: nothing more reaches either side.
func (c *switched) silence() {
	c.once.Do(func() {
		close(c.dead)
		if c.server != nil {
			_ = c.server.Close()
		}
	})
}

func (c *switched) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// StartSwitch listens on a free port of 127.0.0.1 and forwards each
// connection to target ("127.0.0.1:5432").
func StartSwitch(target string) (*Switch, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("switch: listen: %w", err)
	}
	s := &Switch{ln: ln, target: target, conns: map[*switched]struct{}{}}
	s.wg.Go(s.accept)
	return s, nil
}

// Addr is where clients connect ("127.0.0.1:port").
func (s *Switch) Addr() string { return s.ln.Addr().String() }

// Hang silences every open connection and every one made until Resume:
// each is accepted and read from, and nothing is ever answered.
func (s *Switch) Hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hung = true
	for c := range s.conns {
		c.silence()
	}
}

// Resume forwards new connections to the server again; those silenced stay
// silent.
func (s *Switch) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hung = false
}

// Close stops listening and closes every connection; a second call does
// nothing more.
func (s *Switch) Close() {
	s.mu.Lock()
	s.closed = true
	_ = s.ln.Close()
	for c := range s.conns {
		c.silence()
		_ = c.client.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Switch) accept() {
	for {
		client, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &switched{client: client, dead: make(chan struct{})}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = client.Close()
			return
		}
		hung := s.hung
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		if hung {
			c.silence()
		}
		s.wg.Go(func() { s.serve(c) })
	}
}

// serve forwards c until either side closes it, or holds it silent.
func (s *Switch) serve(c *switched) {
	defer func() {
		_ = c.client.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	if !c.isDead() {
		server, err := net.Dial("tcp", s.target)
		if err != nil {
			return // the server refuses: so does the switch
		}
		s.mu.Lock()
		c.server = server
		hung := s.hung
		s.mu.Unlock()
		if hung || c.isDead() {
			c.silence()
			_ = server.Close()
		} else {
			s.wg.Go(func() { toClient(c) })
		}
	}
	// Everything the client sends is read: to the server while the
	// connection lives, to nowhere once it is silent.
	buf := make([]byte, 32<<10)
	for {
		n, err := c.client.Read(buf)
		if n > 0 && !c.isDead() {
			if _, werr := c.server.Write(buf[:n]); werr != nil && !c.isDead() {
				return
			}
		}
		if err != nil {
			if !c.isDead() && c.server != nil {
				_ = c.server.Close()
			}
			return
		}
	}
}

// toClient copies what the server says to the client until the server
// closes (the client is then closed too) or the connection is silenced
// (the client is left waiting).
func toClient(c *switched) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		if c.isDead() {
			return
		}
		if n > 0 {
			if _, werr := c.client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = c.client.Close()
			return
		}
	}
}

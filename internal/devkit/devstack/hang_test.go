package devstack_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
)

// echo serves, on a free port, a server that answers each line with itself.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// ask sends a line on c and reports whether it came back within d.
func ask(t *testing.T, c net.Conn, r *bufio.Reader, d time.Duration) bool {
	t.Helper()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	line, err := r.ReadString('\n')
	return err == nil && line == "ping\n"
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("a switch must accept connections, hung or not: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// A hung switch accepts connections and never answers, on connections open
// before or made while hung; after Resume new connections are answered and
// the hung ones stay silent, as after a partition that killed them.
func TestSwitchHangsAndResumes(t *testing.T) {
	sw, err := devstack.StartSwitch(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	const answered, silent = 5 * time.Second, 200 * time.Millisecond

	before, rb := dial(t, sw.Addr())
	if !ask(t, before, rb, answered) {
		t.Fatal("a switch that is not hung does not forward")
	}
	sw.Hang()
	if ask(t, before, rb, silent) {
		t.Fatal("a connection open when the switch hung still answers")
	}
	during, rd := dial(t, sw.Addr())
	if ask(t, during, rd, silent) {
		t.Fatal("a connection made while hung answers")
	}
	sw.Resume()
	after, ra := dial(t, sw.Addr())
	if !ask(t, after, ra, answered) {
		t.Fatal("a connection made after Resume is not answered")
	}
	if ask(t, during, rd, silent) || ask(t, before, rb, silent) {
		t.Fatal("a connection silenced before Resume answers after it")
	}
}

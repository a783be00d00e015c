package chaos

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
)

// The broker and the registry run as processes of their own, so that a
// scenario can kill them and start them again on their data: the runner's
// binary (cmd/chaos, or a test binary) runs one of them when CHAOS_CHILD
// names it. Their settings come in these variables.
const (
	envChild          = "CHAOS_CHILD"      // broker or registry
	envListen         = "CHAOS_LISTEN"     // host:port to listen on
	envAdvertise      = "CHAOS_ADVERTISE"  // broker: host:port clients are told to use (the fault proxy's)
	envDataDir        = "CHAOS_DATA_DIR"   // broker: kfake's DataDir; registry: its state file
	envPartitions     = "CHAOS_PARTITIONS" // broker: partitions of each topic made at first start
	envTopic, envDLQ  = "CHAOS_TOPIC", "CHAOS_DLQ_TOPIC"
	childBroker       = "broker"
	childRegistry     = "registry"
	childReadyMessage = "chaos child ready"
)

// RunChildIfAsked runs the broker or the registry and exits when the
// environment asks this process to be one (CHAOS_CHILD); otherwise it
// returns at once. Both cmd/chaos and the package's tests call it first.
func RunChildIfAsked() {
	role := os.Getenv(envChild)
	if role == "" {
		return
	}
	if err := runChild(role); err != nil {
		fmt.Fprintf(os.Stderr, "chaos %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runChild(role string) error {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	switch role {
	case childBroker:
		parts, err := strconv.Atoi(os.Getenv(envPartitions))
		if err != nil {
			return fmt.Errorf("%s: %w", envPartitions, err)
		}
		listen, advertise := os.Getenv(envListen), os.Getenv(envAdvertise)
		adv, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			return fmt.Errorf("%s: %w", envAdvertise, err)
		}
		// kfake tells clients its listener's address: this listener is on
		// listen and says it is on the proxy's, so that clients keep going
		// through the proxy after bootstrap.
		k, err := devstack.StartKafka(devstack.KafkaConfig{
			Partitions: int32(parts),
			Topics:     []string{os.Getenv(envTopic), os.Getenv(envDLQ)},
			DataDir:    os.Getenv(envDataDir),
			Opts: []kfake.Opt{kfake.ListenFn(func(network, _ string) (net.Listener, error) {
				ln, err := net.Listen(network, listen)
				if err != nil {
					return nil, err
				}
				return advertised{ln, adv}, nil
			})},
		})
		if err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, childReadyMessage, listen, "advertised as", advertise)
		<-stop
		k.Close()
		return nil
	case childRegistry:
		r, err := devstack.StartRegistryWith(devstack.RegistryConfig{Addr: os.Getenv(envListen), StatePath: os.Getenv(envDataDir)})
		if err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, childReadyMessage, r.URL())
		<-stop
		r.Close()
		return nil
	}
	return fmt.Errorf("unknown %s %q", envChild, role)
}

// advertised is a listener that reports another address as its own.
type advertised struct {
	net.Listener
	addr net.Addr
}

func (a advertised) Addr() net.Addr { return a.addr }

// Package devstack is the embedded development stack used by the tests and
// cmd/playground, so neither needs Docker: a Kafka-protocol broker (kfake, in
// process, reached over TCP like any cluster), a Confluent-compatible Schema
// Registry server, and a way to find or start PostgreSQL. Nothing here is a
// mock: clients talk to these over the network with their real code.
package devstack

import (
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaConfig configures StartKafka.
type KafkaConfig struct {
	Port       int      // 0 picks a free port; the playground uses 9092
	Partitions int32    // per topic; default 6
	Topics     []string // created at start; default order-events and order-events.dlq
	// DataDir, when set, keeps the broker's topics, records and committed
	// offsets there (kfake's DataDir): a broker started again on the same
	// directory resumes them, and creates Topics only the first time.
	DataDir string
	// Opts are further kfake options: EnableSASL, Superuser and TLS make a
	// secured broker, as the tests of KAFKA_SECURITY_PROTOCOL need.
	Opts []kfake.Opt
}

// Kafka is a running single-broker kfake cluster listening on 127.0.0.1.
type Kafka struct {
	// Cluster is exposed for its fault hooks (Fault, ControlKey, SleepControl).
	Cluster *kfake.Cluster
}

// StartKafka starts a broker with the topics already created.
func StartKafka(cfg KafkaConfig) (*Kafka, error) {
	if cfg.Partitions == 0 {
		cfg.Partitions = 6
	}
	if len(cfg.Topics) == 0 {
		cfg.Topics = []string{"order-events", "order-events.dlq"}
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(cfg.Partitions, cfg.Topics...)}
	if cfg.Port != 0 {
		opts = append(opts, kfake.Ports(cfg.Port))
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	opts = append(opts, cfg.Opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	if len(c.ListenAddrs()) == 0 {
		c.Close()
		return nil, errors.New("start kfake: no listener")
	}
	return &Kafka{Cluster: c}, nil
}

// Hang makes the broker hold every request of key (kmsg.Produce,
// kmsg.Fetch…) unanswered, on its connection, until release is called: a
// broker that takes requests and never answers them. Requests of other keys
// are answered meanwhile. Release answers the held requests and lets later
// ones through; calling it again does nothing.
func (k *Kafka) Hang(key kmsg.Key) (release func()) {
	released := make(chan struct{})
	var once sync.Once
	c := k.Cluster
	c.ControlKey(key.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case <-released:
			c.DropControl()
			return nil, nil, false
		default:
		}
		c.KeepControl()
		c.SleepControl(func() { <-released })
		return nil, nil, false
	})
	return func() { once.Do(func() { close(released) }) }
}

// Brokers returns the bootstrap addresses (127.0.0.1:port).
func (k *Kafka) Brokers() []string { return k.Cluster.ListenAddrs() }

// Close stops the broker; its data is lost, unless it has a DataDir.
func (k *Kafka) Close() { k.Cluster.Close() }

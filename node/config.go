package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is a node's configuration, read from YAML. Relative paths are
// relative to the directory of the configuration file.
type Config struct {
	// Genesis is the path of the federation's genesis document, e.g. "genesis.json".
	Genesis string `yaml:"genesis"`
	// NodeID is this node's ID: as listed in the genesis, and the name in the
	// node certificate's identity (spiffe://<org>/node/<id>).
	NodeID string `yaml:"node_id"`
	// DataDir holds the Raft log and snapshots (raft/) and the state database
	// (state/), e.g. "/var/lib/hashfed".
	DataDir string `yaml:"data_dir"`
	// APIListen is the address the gRPC API listens on, e.g. ":7400".
	// Empty means the node's api_address in the genesis.
	APIListen string `yaml:"api_listen"`
	// RaftListen is the address Raft listens on, e.g. ":7401".
	// Empty means the node's raft_address in the genesis.
	RaftListen string `yaml:"raft_listen"`
	// RaftAdvertise is the host:port other nodes dial for Raft. Empty means the
	// genesis raft_address, or for a node that joins later, RaftListen.
	RaftAdvertise string `yaml:"raft_advertise"`
	// HTTPListen is the address the HTTPS tile server listens on, e.g. ":7402";
	// empty means no tile server. It serves the ledger as a C2SP tlog-tiles
	// log (/checkpoint, /tile/...) to the same callers as the API.
	HTTPListen string `yaml:"http_listen"`
	// TLSCert and TLSKey are the node's certificate and key issued by its org's CA
	// (hashfed certs create-node).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// CheckpointKey is the node's note signing key file (hashfed certs create-node
	// writes it next to the certificate). Its public half is in the genesis.
	CheckpointKey string `yaml:"checkpoint_key"`
	// Join lists API addresses of running nodes. A node that is not in the
	// genesis asks them to add it to Raft as a non-voter; a founding voter
	// that lost its data asks to be added back as a voter. A node with join
	// addresses never bootstraps a new cluster.
	Join []string `yaml:"join"`
	// CheckpointInterval is how often the leader publishes a checkpoint
	// cosigned by the voting nodes when the ledger has grown, e.g. "500ms".
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// Raft tunes consensus timing. Raise the timeouts well above the round-trip
	// time between the farthest voters.
	Raft RaftConfig `yaml:"raft"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`

	// Log overrides the logger built from LogLevel (not read from YAML).
	Log *slog.Logger `yaml:"-"`
	// APIListener, RaftListener and HTTPListener, when set, are used instead
	// of listening on APIListen, RaftListen and HTTPListen (not read from
	// YAML; for embedding and tests).
	APIListener  net.Listener `yaml:"-"`
	RaftListener net.Listener `yaml:"-"`
	HTTPListener net.Listener `yaml:"-"`
}

// RaftConfig tunes Raft.
type RaftConfig struct {
	// HeartbeatTimeout and ElectionTimeout, e.g. "1s".
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout"`
	ElectionTimeout  time.Duration `yaml:"election_timeout"`
	// LeaderLeaseTimeout, e.g. "500ms"; at most HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration `yaml:"leader_lease_timeout"`
	// CommitTimeout bounds how long a commit waits to be batched, e.g. "20ms".
	CommitTimeout time.Duration `yaml:"commit_timeout"`
	// SnapshotInterval is how often Raft considers a snapshot, e.g. "2m".
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`
	// SnapshotThreshold is how many new log entries trigger a snapshot.
	SnapshotThreshold uint64 `yaml:"snapshot_threshold"`
	// TrailingLogs is how many log entries stay after a snapshot, so slow
	// followers catch up from the log instead of a snapshot.
	TrailingLogs uint64 `yaml:"trailing_logs"`
}

// DefaultConfig returns a configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		Genesis:            "genesis.json",
		DataDir:            "data",
		LogLevel:           "info",
		CheckpointInterval: 500 * time.Millisecond,
		Raft: RaftConfig{
			HeartbeatTimeout:   time.Second,
			ElectionTimeout:    time.Second,
			LeaderLeaseTimeout: 500 * time.Millisecond,
			CommitTimeout:      20 * time.Millisecond,
			SnapshotInterval:   2 * time.Minute,
			SnapshotThreshold:  8192,
			TrailingLogs:       10240,
		},
	}
}

// LoadConfig reads a YAML configuration over [DefaultConfig], resolves
// relative paths against the file's directory and validates it.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	cfg.resolve(filepath.Dir(path))
	return cfg, cfg.Validate()
}

// ParseConfig decodes YAML over [DefaultConfig]. Unknown keys are an error.
func ParseConfig(b []byte) (Config, error) {
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty file (io.EOF) keeps the defaults.
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parsing config: %w", err)
	}
	return cfg, nil
}

func (c *Config) resolve(dir string) {
	for _, p := range []*string{&c.Genesis, &c.DataDir, &c.TLSCert, &c.TLSKey, &c.CheckpointKey} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// Validate reports the first missing or inconsistent setting.
func (c *Config) Validate() error {
	switch {
	case c.Genesis == "":
		return errors.New("config: genesis is required")
	case c.NodeID == "":
		return errors.New("config: node_id is required")
	case c.DataDir == "":
		return errors.New("config: data_dir is required")
	case c.TLSCert == "" || c.TLSKey == "":
		return errors.New("config: tls_cert and tls_key are required")
	case c.CheckpointKey == "":
		return errors.New("config: checkpoint_key is required")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error", "":
	default:
		return fmt.Errorf("config: log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.CheckpointInterval < 10*time.Millisecond || c.CheckpointInterval > time.Minute {
		return fmt.Errorf("config: checkpoint_interval %v: want 10ms to 1m", c.CheckpointInterval)
	}
	r := c.Raft
	if r.HeartbeatTimeout < 5*time.Millisecond || r.ElectionTimeout < 5*time.Millisecond {
		return errors.New("config: raft heartbeat_timeout and election_timeout must be at least 5ms")
	}
	if r.LeaderLeaseTimeout > r.HeartbeatTimeout {
		return errors.New("config: raft leader_lease_timeout must not exceed heartbeat_timeout")
	}
	for _, a := range append([]string{c.APIListen, c.RaftListen, c.RaftAdvertise, c.HTTPListen}, c.Join...) {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("config: address %q: %w", a, err)
		}
	}
	return nil
}

func (c *Config) logger() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

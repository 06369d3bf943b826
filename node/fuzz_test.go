package node

import (
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParseConfig parses node configurations. A configuration that parses
// must survive a round trip through YAML unchanged, and validating it must
// not panic.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"",
		"genesis: genesis.json\nnode_id: ngo-1\ndata_dir: /var/lib/hashfed\ntls_cert: node.crt\ntls_key: node.key\ncheckpoint_key: node.skey\n",
		"node_id: n\napi_listen: \":7400\"\nraft_listen: \"[::1]:7401\"\nraft_advertise: n.example:7401\nhttp_listen: :7402\njoin: [a:1, \"b:2\"]\n",
		"checkpoint_interval: 250ms\nraft:\n  heartbeat_timeout: 2s\n  election_timeout: 2s\n  leader_lease_timeout: 1s\n  commit_timeout: 5ms\n  snapshot_interval: 1h\n  snapshot_threshold: 100\n  trailing_logs: 10\nlog_level: debug\n",
		"checkpoint_interval: 1\n",
		"unknown: x\n",
		"join: &a [x:1]\nhttp_listen: *a\n",
		"---\nnode_id: a\n---\nnode_id: b\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b)
		if err != nil {
			return
		}
		_ = cfg.Validate()
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("a parsed configuration does not marshal: %v", err)
		}
		again, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("a parsed configuration, marshalled, does not parse: %v\n%s", err, out)
		}
		// An empty join list marshals as [], which parses as an empty,
		// not a nil, slice: the same configuration.
		if len(cfg.Join) == 0 && len(again.Join) == 0 {
			cfg.Join, again.Join = nil, nil
		}
		if !reflect.DeepEqual(again, cfg) {
			t.Fatalf("configuration changed in a round trip:\n%+v\n%+v", cfg, again)
		}
		// Validate reports the same verdict for both.
		if (cfg.Validate() == nil) != (again.Validate() == nil) {
			t.Fatalf("Validate disagrees across a round trip: %v, %v", cfg.Validate(), again.Validate())
		}
	})
}

// FuzzParsePageToken parses ListSignals page tokens: a token the node gives
// out parses back to the state's own token for the same set and is refused
// for another set; any token that parses yields a non-empty state token.
func FuzzParsePageToken(f *testing.F) {
	f.Add("ngo/csam", "0a1b2c", pageToken("ngo/csam", "0a1b2c"))
	f.Add("ngo/csam", "ff", pageToken("iwf/list", "ff"))
	f.Add("a/b", "", "")
	f.Add("a/b", "x", "bm8tbmV3bGluZQ")
	f.Add("a/b", "x", "YS9iCg==")
	f.Fuzz(func(t *testing.T, set, after, token string) {
		if after != "" && !strings.Contains(set, "\n") {
			got, err := parsePageToken(set, pageToken(set, after))
			if err != nil || got != after {
				t.Fatalf("parsePageToken(%q, pageToken(%q, %q)) = %q, %v", set, set, after, got, err)
			}
			if other := set + "x"; other != set {
				if _, err := parsePageToken(other, pageToken(set, after)); err == nil {
					t.Fatalf("a token for set %q was accepted for set %q", set, other)
				}
			}
		}
		got, err := parsePageToken(set, token)
		if err != nil || token == "" {
			return
		}
		if got == "" {
			t.Fatalf("parsePageToken(%q, %q) accepted a token with no state token", set, token)
		}
		if again, err := parsePageToken(set, pageToken(set, got)); err != nil || again != got {
			t.Fatalf("re-encoding the state token %q gives %q, %v", got, again, err)
		}
	})
}

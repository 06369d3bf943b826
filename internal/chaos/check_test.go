package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A history script: each step is one event, in order, so the recorder's
// clock orders them as written. "call p1 a#1" starts publish p1 of a#1;
// "ok p1 3" returns it OK at index 3; "exists p1", "failed p1", "unknown
// p1" return it otherwise; "read r1" starts read r1; "saw r1 a#1 b#1"
// returns it with those entries ("saw r1" for an empty ledger); "err r1"
// fails it.
func play(t *testing.T, script string) *Recorder {
	t.Helper()
	r := NewRecorder()
	pubs := map[string]func(Outcome, uint64){}
	reads := map[string]func([]Contribution, error){}
	client := map[string]int{}
	clientOf := func(name string) int {
		if _, ok := client[name]; !ok {
			client[name] = len(client)
		}
		return client[name]
	}
	for _, line := range strings.Split(strings.TrimSpace(script), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("bad step %q", line)
		}
		name := f[1]
		switch f[0] {
		case "call":
			pubs[name] = r.Publish(clientOf(name), parse(t, f[2]))
		case "ok":
			var idx uint64
			fmt.Sscan(f[2], &idx)
			pubs[name](OK, idx)
		case "exists":
			pubs[name](AlreadyPresent, 0)
		case "failed":
			pubs[name](Failed, 0)
		case "unknown":
			pubs[name](Unknown, 0)
		case "read":
			reads[name] = r.Read(clientOf(name))
		case "saw":
			var cs []Contribution
			for _, s := range f[2:] {
				cs = append(cs, parse(t, s))
			}
			reads[name](cs, nil)
		case "err":
			reads[name](nil, errors.New("unavailable"))
		default:
			t.Fatalf("bad step %q", line)
		}
	}
	return r
}

func parse(t *testing.T, s string) Contribution {
	t.Helper()
	if s == "-" {
		return Contribution{}
	}
	set, seq, ok := strings.Cut(s, "#")
	var n uint64
	if _, err := fmt.Sscan(seq, &n); !ok || err != nil {
		t.Fatalf("bad contribution %q", s)
	}
	return Contribution{Set: set, Seq: n}
}

func parseAll(t *testing.T, s string) []Contribution {
	var cs []Contribution
	for _, f := range strings.Fields(s) {
		cs = append(cs, parse(t, f))
	}
	return cs
}

func TestLinearizable(t *testing.T) {
	for _, tt := range []struct {
		name   string
		script string
		want   porcupine.CheckResult
	}{
		{"sequential", `
call p a#1
ok p 1
call q b#1
ok q 2
read r
saw r a#1 b#1`, porcupine.Ok},
		{"concurrent publishes commit in either order", `
call p a#1
call q b#1
ok q 1
ok p 2
read r
saw r b#1 a#1`, porcupine.Ok},
		{"read concurrent with a publish sees before or after", `
call p a#1
read r
read s
saw r
ok p 1
saw s a#1`, porcupine.Ok},
		{"failed read has no effect", `
call p a#1
ok p 1
read r
err r
read s
saw s a#1`, porcupine.Ok},
		{"unknown that applied, then retried", `
call p a#1
unknown p
read r
saw r a#1
call p2 a#1
exists p2`, porcupine.Ok},
		{"unknown that did not apply, then retried", `
call p a#1
unknown p
read r
saw r
call p2 a#1
ok p2 1
read s
saw s a#1`, porcupine.Ok},
		{"unknown that applies late, after another publish", `
call p a#1
unknown p
call q b#1
ok q 1
read r
saw r b#1
read s
saw s b#1 a#1`, porcupine.Ok},
		{"unknown that never applies", `
call p a#1
unknown p
read r
saw r`, porcupine.Ok},
		{"failed publish changes nothing", `
call p a#1
failed p
read r
saw r`, porcupine.Ok},
		{"acknowledged then gone (lost ack)", `
call p a#1
ok p 1
read r
saw r`, porcupine.Illegal},
		{"duplicate", `
call p a#1
unknown p
call p2 a#1
ok p2 2
read r
saw r a#1 a#1`, porcupine.Illegal},
		{"stale read", `
call p a#1
ok p 1
call q b#1
ok q 2
read r
saw r a#1`, porcupine.Illegal},
		{"read shows a contribution before its publish was called", `
read r
saw r a#1
call p a#1
ok p 1`, porcupine.Illegal},
		{"unknown shown, then gone", `
call p a#1
unknown p
read r
saw r a#1
read s
saw s`, porcupine.Illegal},
		{"already present but never applied", `
call p a#1
exists p
read r
saw r`, porcupine.Illegal},
		{"acknowledged at the wrong index", `
call p a#1
ok p 2`, porcupine.Illegal},
		{"failed publish applied", `
call p a#1
failed p
read r
saw r a#1`, porcupine.Illegal},
		{"reads disagree on order", `
call p a#1
call q b#1
read r
saw r a#1 b#1
read s
saw s b#1 a#1
unknown p
unknown q`, porcupine.Illegal},
		{"entry that is no contribution", `
read r
saw r -`, porcupine.Illegal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := play(t, tt.script)
			got, info := CheckLinearizable(r, 10*time.Second)
			if got != tt.want {
				t.Errorf("CheckLinearizable = %s, want %s", got, tt.want)
			}
			// The visualisation must render both kinds of result.
			if err := porcupine.Visualize(Model(), info, discard{}); err != nil {
				t.Errorf("Visualize: %v", err)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestCheckSet(t *testing.T) {
	for _, tt := range []struct {
		name   string
		script string
		final  string
		ok     bool
		check  func(SetResult) []Contribution
		want   string // contributions check returns
	}{
		{"all there", "call p a#1\nok p 1\ncall q b#1\nexists q", "a#1 b#1", true, nil, ""},
		{"lost ack", "call p a#1\nok p 1\ncall q b#1\nok q 2", "a#1", false,
			func(s SetResult) []Contribution { return s.Lost }, "b#1"},
		{"lost already-present", "call p a#1\nexists p", "", false,
			func(s SetResult) []Contribution { return s.Lost }, "a#1"},
		{"duplicate", "call p a#1\nunknown p\ncall p2 a#1\nok p2 1", "a#1 a#1", false,
			func(s SetResult) []Contribution { return s.Duplicated }, "a#1"},
		{"unexpected", "call p a#1\nok p 1", "a#1 z#9", false,
			func(s SetResult) []Contribution { return s.Unexpected }, "z#9"},
		{"unknown recovered", "call p a#1\nunknown p", "a#1", true,
			func(s SetResult) []Contribution { return s.Recovered }, "a#1"},
		{"unknown not applied", "call p a#1\nunknown p", "", true, nil, ""},
		{"never returned, recovered", "call p a#1", "a#1", true,
			func(s SetResult) []Contribution { return s.Recovered }, "a#1"},
		{"misplaced", "call p a#1\nok p 1\ncall q b#1\nok q 2", "b#1 a#1", false,
			func(s SetResult) []Contribution { return s.Misplaced }, "a#1 b#1"},
		{"failed yet present", "call p a#1\nfailed p", "a#1", false,
			func(s SetResult) []Contribution { return s.Refused }, "a#1"},
		{"non-contribution entries skipped", "call p a#1\nok p 2", "- a#1", true, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := play(t, tt.script)
			res := CheckSet(r, parseAll(t, tt.final))
			if res.OK() != tt.ok {
				t.Errorf("OK() = %v, want %v: %s", res.OK(), tt.ok, res)
			}
			if tt.check != nil {
				if got, want := tt.check(res), parseAll(t, tt.want); !slices.Equal(got, want) {
					t.Errorf("got %v, want %v: %s", got, want, res)
				}
			}
		})
	}
}

func TestRecorderLists(t *testing.T) {
	r := play(t, `
call p a#1
unknown p
call p2 a#1
ok p2 1
call q b#1
failed q
call s c#1
read x
saw x a#1`)
	if got, want := r.Acknowledged(), parseAll(t, "a#1"); !slices.Equal(got, want) {
		t.Errorf("Acknowledged = %v, want %v", got, want)
	}
	if got, want := r.Attempted(), parseAll(t, "a#1 b#1 c#1"); !slices.Equal(got, want) {
		t.Errorf("Attempted = %v, want %v", got, want)
	}
	ops := r.Operations()
	if len(ops) != 5 {
		t.Fatalf("%d operations, want 5", len(ops))
	}
	var last int64
	for _, o := range ops {
		last = max(last, o.Call)
		if o.Output.(Output).Outcome != Unknown {
			last = max(last, o.Return)
		}
	}
	for _, o := range ops {
		if in, out := o.Input.(Input), o.Output.(Output); in.Publish && out.Outcome == Unknown && o.Return <= last {
			t.Errorf("unknown publish of %s returns at %d, not after every other event (%d)", in.C, o.Return, last)
		}
	}
	pubs, reads, failed := r.Counts()
	if pubs[Unknown] != 2 || pubs[OK] != 1 || pubs[Failed] != 1 || reads != 1 || failed != 0 {
		t.Errorf("Counts = %v, %d, %d", pubs, reads, failed)
	}
}

func TestOutcomeOf(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want Outcome
	}{
		{nil, OK},
		{status.Error(codes.AlreadyExists, "replay"), AlreadyPresent},
		{fmt.Errorf("publishing: %w", status.Error(codes.AlreadyExists, "replay")), AlreadyPresent},
		{status.Error(codes.InvalidArgument, "bad"), Failed},
		{status.Error(codes.FailedPrecondition, "skips ahead"), Failed},
		{status.Error(codes.PermissionDenied, "not yours"), Failed},
		{status.Error(codes.NotFound, "no set"), Failed},
		{status.Error(codes.Unavailable, "consensus: no leader"), Unknown},
		{fmt.Errorf("%w\nhint: ...", status.Error(codes.Unavailable, "connection reset")), Unknown},
		{status.Error(codes.DeadlineExceeded, "not committed in time"), Unknown},
		{status.Error(codes.Canceled, "canceled"), Unknown},
		{status.Error(codes.Internal, "oops"), Unknown},
		{context.DeadlineExceeded, Unknown},
		{fmt.Errorf("wrapped: %w", context.Canceled), Unknown},
		{errors.New("connection lost"), Unknown},
	} {
		if got := OutcomeOf(tt.err); got != tt.want {
			t.Errorf("OutcomeOf(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}

func TestWriteArtifacts(t *testing.T) {
	r := play(t, `
call p a#1
ok p 1
read r
saw r
read s
err s
call q b#1`)
	r.Fault("partition")()
	res, info := CheckLinearizable(r, 10*time.Second)
	if res != porcupine.Illegal {
		t.Fatalf("CheckLinearizable = %s, want Illegal", res)
	}
	dir := filepath.Join(t.TempDir(), "artifacts")
	if err := WriteArtifacts(dir, r, info, "lost a#1"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"history.json":         `"outcome":"ok"`,
		"linearizability.html": "<html",
		"summary.txt":          "lost a#1\n",
	} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not contain %q", name, want)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "history.json"))
	var h struct {
		Operations []map[string]any
		Faults     []map[string]any
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("history.json: %v", err)
	}
	if len(h.Operations) != 4 || len(h.Faults) != 1 {
		t.Errorf("history.json holds %d operations and %d faults, want 4 and 1", len(h.Operations), len(h.Faults))
	}
	for _, want := range []string{`"error":"unavailable"`, `"outcome":"never returned"`, `"size":0`, `"fault": "partition"`, `"contribution":"a#1"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("history.json does not contain %q:\n%s", want, b)
		}
	}
}

func TestReducedOperations(t *testing.T) {
	r := play(t, `
call p a#1
unknown p
call p2 a#1
ok p2 1
call q b#1
failed q
call s c#1
unknown s
call s2 c#1
unknown s2
call s3 c#1
exists s3
call s4 c#1
exists s4
call u d#1
unknown u
call u2 d#1
read x
saw x a#1 c#1`)
	var got []string
	for _, o := range r.operations(true) {
		in, out := o.Input.(Input), o.Output.(Output)
		if in.Publish {
			got = append(got, fmt.Sprintf("%s %s", in.C, out.Outcome))
		} else {
			got = append(got, "read")
		}
	}
	// a#1's Unknown publish is dropped (a#1 was acknowledged OK), so is
	// b#1's Failed one; of c#1's and d#1's Unknown publishes only the
	// first stays.
	want := []string{"a#1 ok", "c#1 unknown", "c#1 already-present", "c#1 already-present", "d#1 unknown", "read"}
	if !slices.Equal(got, want) {
		t.Fatalf("reduced history %q, want %q", got, want)
	}
	ops := r.operations(true)
	var last int64
	for _, o := range r.Operations() {
		last = max(last, o.Call, o.Return)
	}
	// c#1's Unknown publish may take effect until c#1 is first
	// acknowledged; d#1's until after everything.
	if ops[1].Return != ops[2].Return {
		t.Errorf("unknown publish of c#1 returns at %d, want at its first acknowledgement (%d)", ops[1].Return, ops[2].Return)
	}
	if ops[4].Return != last {
		t.Errorf("unknown publish of d#1 returns at %d, want after everything (%d)", ops[4].Return, last)
	}
}

func TestReadAnomalies(t *testing.T) {
	for _, tt := range []struct {
		name, script string
		want         string // a substring of the first anomaly; "" for none
	}{
		{"none", "call p a#1\nok p 1\nread r\nsaw r a#1", ""},
		{"unknown applied", "call p a#1\nunknown p\nread r\nsaw r a#1", ""},
		{"stale", "call p a#1\nok p 1\nread r\nsaw r", "lacks a#1"},
		{"twice", "call p a#1\nunknown p\nread r\nsaw r a#1 a#1", "a#1 at 1 and 2: a contribution twice"},
		{"stale, first", "call p a#1\nok p 1\ncall q b#1\nok q 2\nread r\nsaw r b#1", "lacks a#1, acknowledged before"},
		{"never attempted", "read r\nsaw r z#1", "never attempted"},
		{"future", "read r\nsaw r a#1\ncall p a#1\nok p 1", "called after the read returned"},
		{"misplaced", "call p a#1\ncall q b#1\nok p 2\nok q 1\nread r\nsaw r a#1 b#1", "acknowledged at 2"},
		{"diverge", "call p a#1\ncall q b#1\nread r\nsaw r a#1 b#1\nread s\nsaw s b#1 a#1\nunknown p\nunknown q", "where read"},
		{"shrinks", "call p a#1\nunknown p\nread r\nsaw r a#1\nread s\nsaw s", "fewer entries"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ReadAnomalies(play(t, tt.script), 1)
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("anomalies %q, want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Errorf("anomalies %q, want one containing %q", got, tt.want)
			}
		})
	}
}

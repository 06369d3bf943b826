// Package chaos records what clients of a federation saw while faults were
// injected, and checks it: Jepsen set semantics against the final ledger
// ([CheckSet]) and linearizability of the whole history against a model of
// an append-only ledger ([Model], [CheckLinearizable], with porcupine). It
// also has a TCP fault proxy ([Proxy]) to put between nodes.
//
// The in-process campaign (campaign_test.go) and the container campaign
// (e2e/) both feed their histories to this checker; docs/FAULTS.md
// describes them.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A Contribution names one contribution: the set and its sequence number.
// Each set has one publishing client, so (set, seq) is unique. The zero
// Contribution stands for a ledger entry that is no contribution (a
// governance act).
type Contribution struct {
	Set string `json:"set"`
	Seq uint64 `json:"seq"`
}

func (c Contribution) String() string {
	if c == (Contribution{}) {
		return "-"
	}
	return fmt.Sprintf("%s#%d", c.Set, c.Seq)
}

// An Outcome is what a client learnt from one attempt to publish.
type Outcome int

// The outcomes.
const (
	// OK: the node acknowledged the contribution at a ledger index.
	OK Outcome = iota
	// AlreadyPresent: the node answered AlreadyExists, so the ledger holds
	// the contribution (this attempt, or an earlier one, put it there).
	AlreadyPresent
	// Failed: the contribution was definitely not applied by this attempt
	// (the federation's rules refused it, or the call never reached Raft).
	Failed
	// Unknown: a timeout, Unavailable, a lost connection: the attempt may
	// or may not take effect, now or later.
	Unknown
)

var outcomeNames = [...]string{OK: "ok", AlreadyPresent: "already-present", Failed: "failed", Unknown: "unknown"}

func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// MarshalText makes outcomes readable in history.json.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// OutcomeOf maps the error of a publish call (a gRPC status, possibly
// wrapped as the client package does) to an outcome. It is conservative:
// only codes that the node gives for a contribution its rules refused, or a
// call refused before it reached Raft, count as Failed; everything else,
// including errors that carry no status, is Unknown.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return OK
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Unknown
	}
	s, ok := status.FromError(err)
	if !ok {
		return Unknown
	}
	switch s.Code() {
	case codes.OK:
		return OK
	case codes.AlreadyExists:
		return AlreadyPresent
	case codes.InvalidArgument, codes.PermissionDenied, codes.NotFound,
		codes.FailedPrecondition, codes.Unauthenticated, codes.Unimplemented:
		// Rules refuse deterministically, in the leader's check before
		// proposing or in every node's apply: either way the ledger does
		// not hold what this attempt carried.
		return Failed
	default:
		// Unavailable, DeadlineExceeded, Canceled, Internal, Unknown,
		// ResourceExhausted, Aborted...: the attempt may have committed.
		return Unknown
	}
}

type opKind int

const (
	opPublish opKind = iota
	opRead
)

// An op is one recorded call, finished or not.
type op struct {
	id     int
	client int
	kind   opKind
	c      Contribution // publish
	call   int64
	ret    int64
	done   bool
	out    Outcome // publish
	index  uint64  // publish, when OK
	read   []Contribution
	err    string // read: why it failed
}

// A Recorder records a history of publishes and reads. It is safe for
// concurrent use by multiple goroutines. Times come from one monotonic clock
// and are strictly increasing across all events.
type Recorder struct {
	start time.Time

	mu     sync.Mutex
	last   int64
	ops    []*op
	faults []*fault
}

// A fault is an interval during which a fault was injected.
type fault struct {
	desc       string
	start, end int64 // end 0 while it lasts
}

// NewRecorder returns an empty recorder whose clock starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// now returns the next timestamp; r.mu must be held.
func (r *Recorder) now() int64 {
	t := int64(time.Since(r.start))
	if t <= r.last {
		t = r.last + 1
	}
	r.last = t
	return t
}

// Publish records the call of a publish of c by client and returns the
// function that records its return: its outcome and, when OK, the ledger
// index the node acknowledged. Call done exactly once; a publish whose done
// is never called counts as Unknown.
func (r *Recorder) Publish(client int, c Contribution) (done func(out Outcome, index uint64)) {
	r.mu.Lock()
	o := &op{id: len(r.ops), client: client, kind: opPublish, c: c, call: r.now()}
	r.ops = append(r.ops, o)
	r.mu.Unlock()
	return func(out Outcome, index uint64) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if o.done {
			panic("chaos: publish recorded twice")
		}
		o.ret, o.done, o.out = r.now(), true, out
		if out == OK {
			o.index = index
		}
	}
}

// Read records a read of the whole ledger by client and returns the
// function that records its return: the contributions at ledger indexes
// 1..n in order (entry 0, the genesis, excluded; an entry that is no
// contribution as a zero Contribution), or the error that made it fail. A
// failed read has no effect and is left out of [Recorder.Operations].
func (r *Recorder) Read(client int) (done func(entries []Contribution, err error)) {
	r.mu.Lock()
	o := &op{id: len(r.ops), client: client, kind: opRead, call: r.now()}
	r.ops = append(r.ops, o)
	r.mu.Unlock()
	return func(entries []Contribution, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if o.done {
			panic("chaos: read recorded twice")
		}
		o.ret, o.done = r.now(), true
		if err != nil {
			o.err = err.Error()
			if o.err == "" {
				o.err = "error"
			}
			return
		}
		o.read = append([]Contribution{}, entries...)
	}
}

// Fault records that the fault described begins now, and returns the
// function that records its end. Faults change no verdict; the artifacts
// show them alongside the operations.
func (r *Recorder) Fault(description string) (healed func()) {
	r.mu.Lock()
	f := &fault{desc: description, start: r.now()}
	r.faults = append(r.faults, f)
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if f.end == 0 {
			f.end = r.now()
		}
	}
}

// snapshot returns copies of the ops, with unfinished publishes as Unknown,
// and the last timestamp.
func (r *Recorder) snapshot() ([]op, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := make([]op, len(r.ops))
	for i, o := range r.ops {
		ops[i] = *o
		if !o.done && o.kind == opPublish {
			ops[i].out = Unknown
		}
	}
	return ops, r.last
}

// Operations returns the history for porcupine: every publish, and every
// read that succeeded. An Unknown publish (or one that never returned) may
// take effect at any time after its call, so its return time is after
// every other operation's.
func (r *Recorder) Operations() []porcupine.Operation { return r.operations(false) }

// operations returns the history, or with reduce a smaller one that is
// linearizable exactly when the whole one is, which keeps the checker's
// search small however many attempts a fault left Unknown:
//
//   - A Failed publish changes nothing in the model, at any point: it is
//     left out.
//   - Once any publish of a contribution is acknowledged, the contribution
//     is present, and an Unknown publish of it can only be a no-op from
//     then on. An Unknown publish of a contribution that some publish
//     acknowledged OK can never append it (that OK would then append it a
//     second time), so it is left out.
//   - Of the Unknown publishes of any other contribution, at most one
//     appends it, and wherever a later one could, the earliest could too:
//     only the earliest is kept, returning when the first acknowledgement
//     of the contribution that returns after its call does, or after
//     everything.
func (r *Recorder) operations(reduce bool) []porcupine.Operation {
	ops, last := r.snapshot()
	// acks lists the return times of each contribution's acknowledgements,
	// in increasing order.
	acks := map[Contribution][]int64{}
	okd := map[Contribution]bool{}
	for _, o := range ops {
		if o.kind == opPublish && o.done && (o.out == OK || o.out == AlreadyPresent) {
			acks[o.c] = append(acks[o.c], o.ret)
			okd[o.c] = okd[o.c] || o.out == OK
		}
	}
	for _, ts := range acks {
		slices.Sort(ts)
	}
	kept := map[Contribution]bool{} // has its earliest Unknown publish
	var hist []porcupine.Operation
	for _, o := range ops {
		switch o.kind {
		case opPublish:
			ret := o.ret
			if reduce && o.out == Failed {
				continue
			}
			if o.out == Unknown {
				ret = last + 1
				if reduce {
					if okd[o.c] || kept[o.c] {
						continue
					}
					kept[o.c] = true
					ts := acks[o.c]
					if i, _ := slices.BinarySearch(ts, o.call); i < len(ts) {
						ret = ts[i]
					}
				}
			}
			hist = append(hist, porcupine.Operation{
				ClientId: o.client, Call: o.call, Return: ret,
				Input:  Input{Publish: true, C: o.c},
				Output: Output{Outcome: o.out, Index: o.index},
			})
		case opRead:
			if !o.done || o.err != "" {
				continue
			}
			hist = append(hist, porcupine.Operation{
				ClientId: o.client, Call: o.call, Return: o.ret,
				Input:  Input{},
				Output: Output{Entries: o.read},
			})
		}
	}
	return hist
}

// Acknowledged returns the contributions some publish of which returned OK
// or AlreadyPresent, each once, in the order first acknowledged.
func (r *Recorder) Acknowledged() []Contribution {
	ops, _ := r.snapshot()
	seen := map[Contribution]bool{}
	var out []Contribution
	for _, o := range ops {
		if o.kind == opPublish && o.done && (o.out == OK || o.out == AlreadyPresent) && !seen[o.c] {
			seen[o.c] = true
			out = append(out, o.c)
		}
	}
	return out
}

// Attempted returns the contributions some publish of which was called,
// each once, in the order first called.
func (r *Recorder) Attempted() []Contribution {
	ops, _ := r.snapshot()
	seen := map[Contribution]bool{}
	var out []Contribution
	for _, o := range ops {
		if o.kind == opPublish && !seen[o.c] {
			seen[o.c] = true
			out = append(out, o.c)
		}
	}
	return out
}

// Counts returns how many publishes ended with each outcome (unfinished
// ones as Unknown) and how many reads succeeded and failed.
func (r *Recorder) Counts() (publishes map[Outcome]int, reads, failedReads int) {
	ops, _ := r.snapshot()
	publishes = map[Outcome]int{}
	for _, o := range ops {
		switch {
		case o.kind == opPublish:
			publishes[o.out]++
		case o.done && o.err == "":
			reads++
		default:
			failedReads++
		}
	}
	return publishes, reads, failedReads
}

package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// A SetResult compares a final read of the ledger with what clients
// attempted and were told, with Jepsen's set semantics.
type SetResult struct {
	Attempted, Acknowledged int
	// Lost are acknowledged (OK or AlreadyPresent) but absent.
	Lost []Contribution
	// Unexpected are present but were never attempted.
	Unexpected []Contribution
	// Recovered are present and attempted but never acknowledged: every
	// attempt was Unknown or Failed. (Not an error: an Unknown may apply.)
	Recovered []Contribution
	// Duplicated are present more than once.
	Duplicated []Contribution
	// Misplaced were acknowledged OK at a ledger index other than the one
	// that holds them in the final read.
	Misplaced []Contribution
	// Refused are present although every attempt was Failed.
	Refused []Contribution
}

// OK reports whether no contribution was lost, unexpected, duplicated,
// misplaced or refused.
func (s SetResult) OK() bool {
	return len(s.Lost) == 0 && len(s.Unexpected) == 0 && len(s.Duplicated) == 0 && len(s.Misplaced) == 0 && len(s.Refused) == 0
}

func (s SetResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "attempted %d, acknowledged %d", s.Attempted, s.Acknowledged)
	for _, f := range []struct {
		name string
		cs   []Contribution
	}{{"lost", s.Lost}, {"unexpected", s.Unexpected}, {"recovered", s.Recovered}, {"duplicated", s.Duplicated}, {"misplaced", s.Misplaced}, {"refused", s.Refused}} {
		fmt.Fprintf(&b, ", %s %d", f.name, len(f.cs))
		if len(f.cs) > 0 {
			b.WriteString(" " + list(f.cs))
		}
	}
	return b.String()
}

func list(cs []Contribution) string {
	const most = 20
	s := make([]string, 0, min(len(cs), most))
	for i, c := range cs {
		if i == most {
			s = append(s, fmt.Sprintf("and %d more", len(cs)-most))
			break
		}
		s = append(s, c.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}

// CheckSet checks final, the contributions at ledger indexes 1..n of a read
// made after every publish returned, against r's history. Zero
// Contributions (entries that are no contribution) are skipped.
func CheckSet(r *Recorder, final []Contribution) SetResult {
	ops, _ := r.snapshot()
	attempted := map[Contribution]bool{}
	maybe := map[Contribution]bool{} // some attempt was not Failed
	acked := map[Contribution]bool{}
	okIndex := map[Contribution][]uint64{}
	for _, o := range ops {
		if o.kind != opPublish {
			continue
		}
		attempted[o.c] = true
		if o.out != Failed {
			maybe[o.c] = true
		}
		if o.done && (o.out == OK || o.out == AlreadyPresent) {
			acked[o.c] = true
		}
		if o.done && o.out == OK {
			okIndex[o.c] = append(okIndex[o.c], o.index)
		}
	}
	res := SetResult{Attempted: len(attempted), Acknowledged: len(acked)}
	at := map[Contribution][]uint64{} // ledger indexes holding each contribution
	for i, c := range final {
		if c == (Contribution{}) {
			continue
		}
		at[c] = append(at[c], uint64(i+1))
		if len(at[c]) == 2 {
			res.Duplicated = append(res.Duplicated, c)
		}
	}
	for i, c := range final {
		if c == (Contribution{}) || at[c][0] != uint64(i+1) {
			continue
		}
		switch {
		case !attempted[c]:
			res.Unexpected = append(res.Unexpected, c)
		case !maybe[c]:
			res.Refused = append(res.Refused, c)
		case !acked[c]:
			res.Recovered = append(res.Recovered, c)
		}
	}
	for _, c := range r.Acknowledged() {
		if len(at[c]) == 0 {
			res.Lost = append(res.Lost, c)
			continue
		}
		for _, idx := range okIndex[c] {
			if idx != at[c][0] {
				res.Misplaced = append(res.Misplaced, c)
				break
			}
		}
	}
	return res
}

// CheckLinearizable checks r's history against [Model]. A timeout of 0 means
// none; a check that times out returns porcupine.Unknown.
//
// It checks a reduced history that is linearizable exactly when
// [Recorder.Operations] is: Failed publishes, and Unknown publishes that
// could only be no-ops or that an earlier Unknown publish of the same
// contribution stands for, are left out (history.json has them all).
func CheckLinearizable(r *Recorder, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(Model(), r.operations(true), timeout)
}

// A historyRecord is one operation in history.json. Times are nanoseconds
// since the recorder was made.
type historyRecord struct {
	ID     int    `json:"id"`
	Client int    `json:"client"`
	Kind   string `json:"kind"`
	Call   int64  `json:"call"`
	// Return is absent for a publish that never returned.
	Return       int64  `json:"return,omitempty"`
	Contribution string `json:"contribution,omitempty"`
	Outcome      string `json:"outcome,omitempty"`
	Index        uint64 `json:"index,omitempty"`
	// Size and Entries are a successful read's: "set#seq" for the
	// contribution at each ledger index from 1, "-" for another entry.
	Size    *int     `json:"size,omitempty"`
	Entries []string `json:"entries,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// A faultRecord is one fault in history.json.
type faultRecord struct {
	Fault string `json:"fault"`
	Start int64  `json:"start"`
	// End is absent for a fault never healed.
	End int64 `json:"end,omitempty"`
}

// WriteArtifacts creates dir and writes into it history.json (every
// operation, failed reads included, with its times and results, and every
// fault recorded with [Recorder.Fault]), linearizability.html (porcupine's
// visualisation of info, from [CheckLinearizable], with the faults shown
// as annotations) and summary.txt (summary). Times are nanoseconds since
// [NewRecorder].
func WriteArtifacts(dir string, r *Recorder, info porcupine.LinearizationInfo, summary string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating artifact directory: %w", err)
	}
	ops, last := r.snapshot()
	r.mu.Lock()
	var faults []faultRecord
	var notes []porcupine.Annotation
	for _, f := range r.faults {
		faults = append(faults, faultRecord{Fault: f.desc, Start: f.start, End: f.end})
		end := f.end
		if end == 0 {
			end = last
		}
		notes = append(notes, porcupine.Annotation{Tag: "faults", Start: f.start, End: end, Description: f.desc, BackgroundColor: "#f8d7da"})
	}
	r.mu.Unlock()
	info.AddAnnotations(notes)
	recs := make([]historyRecord, 0, len(ops))
	for _, o := range ops {
		rec := historyRecord{ID: o.id, Client: o.client, Call: o.call, Return: o.ret}
		switch o.kind {
		case opPublish:
			rec.Kind, rec.Contribution, rec.Outcome, rec.Index = "publish", o.c.String(), o.out.String(), o.index
			if !o.done {
				rec.Outcome = "never returned"
			}
		case opRead:
			rec.Kind, rec.Error = "read", o.err
			if o.done && o.err == "" {
				n := len(o.read)
				rec.Size = &n
				for _, c := range o.read {
					rec.Entries = append(rec.Entries, c.String())
				}
			} else if !o.done {
				rec.Error = "never returned"
			}
		}
		recs = append(recs, rec)
	}
	// One operation per line: large, but easy to grep and to diff.
	var b bytes.Buffer
	b.WriteString("{\"operations\": [\n")
	for i, rec := range recs {
		line, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		b.Write(line)
		if i < len(recs)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	fs, err := json.MarshalIndent(faults, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "],\n\"faults\": %s}\n", fs)
	if err := os.WriteFile(filepath.Join(dir, "history.json"), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing history: %w", err)
	}
	if err := porcupine.VisualizePath(Model(), info, filepath.Join(dir, "linearizability.html")); err != nil {
		return fmt.Errorf("writing visualisation: %w", err)
	}
	if summary != "" && !strings.HasSuffix(summary, "\n") {
		summary += "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(summary), 0o644); err != nil {
		return fmt.Errorf("writing summary: %w", err)
	}
	return nil
}

// ReadAnomalies explains, in words, what the successful reads in r's
// history saw that no append-only ledger could have shown them: a
// contribution twice, a read missing contributions acknowledged before it
// was called (a stale read) or showing one not yet attempted when it
// returned, entries at other indexes than the ones acknowledged, reads that
// disagree on an entry, a read showing less than one that returned before
// it was called. It gives at most one line per kind for each read. These
// are necessary conditions only: a history without anomalies may still not
// be linearizable, which [CheckLinearizable] decides. It returns at most max
// lines (all if max <= 0).
func ReadAnomalies(r *Recorder, max int) []string {
	ops, _ := r.snapshot()
	var out []string
	add := func(format string, args ...any) bool {
		if max > 0 && len(out) == max {
			return false
		}
		out = append(out, fmt.Sprintf(format, args...))
		return true
	}
	firstCall := map[Contribution]int64{}
	okIndex := map[Contribution]uint64{}
	type ack struct {
		c   Contribution
		ret int64
	}
	var acks []ack
	var reads []op
	for _, o := range ops {
		switch {
		case o.kind == opPublish:
			if _, ok := firstCall[o.c]; !ok {
				firstCall[o.c] = o.call
			}
			if o.done && o.out == OK {
				okIndex[o.c] = o.index
			}
			if o.done && (o.out == OK || o.out == AlreadyPresent) {
				acks = append(acks, ack{o.c, o.ret})
			}
		case o.done && o.err == "":
			reads = append(reads, o)
		}
	}
	var longest *op
	for i := range reads {
		if longest == nil || len(reads[i].read) > len(longest.read) {
			longest = &reads[i]
		}
	}
	// more describes how many more of a kind there are.
	more := func(n int) string {
		if n <= 1 {
			return ""
		}
		return fmt.Sprintf(" (and %d more)", n-1)
	}
	for i := range reads {
		rd := &reads[i]
		name := fmt.Sprintf("read %d (client %d, %d entries)", rd.id, rd.client, len(rd.read))
		var lines []string
		at := map[Contribution]int{}
		var twice, never, early, misplaced, differ []string
		for j, c := range rd.read {
			idx := j + 1
			if c == (Contribution{}) {
				continue
			}
			if prev, ok := at[c]; ok {
				twice = append(twice, fmt.Sprintf("%s at %d and %d", c, prev, idx))
			}
			at[c] = idx
			if call, ok := firstCall[c]; !ok {
				never = append(never, fmt.Sprintf("%s at %d", c, idx))
			} else if call > rd.ret {
				early = append(early, fmt.Sprintf("%s at %d", c, idx))
			}
			if want, ok := okIndex[c]; ok && want != uint64(idx) {
				misplaced = append(misplaced, fmt.Sprintf("%s at %d, acknowledged at %d", c, idx, want))
			}
			if j < len(longest.read) && longest.read[j] != c {
				differ = append(differ, fmt.Sprintf("%s at %d where read %d shows %s", c, idx, longest.id, longest.read[j]))
			}
		}
		var stale []string
		for _, a := range acks {
			if _, ok := at[a.c]; !ok && a.ret < rd.call && !slices.Contains(stale, a.c.String()) {
				stale = append(stale, a.c.String())
			}
		}
		if len(stale) > 0 {
			lines = append(lines, fmt.Sprintf("%s lacks %s%s, acknowledged before the read was called (a stale read)", name, stale[0], more(len(stale))))
		}
		if len(twice) > 0 {
			lines = append(lines, fmt.Sprintf("%s shows %s%s: a contribution twice", name, twice[0], more(len(twice))))
		}
		if len(never) > 0 {
			lines = append(lines, fmt.Sprintf("%s shows %s%s, never attempted", name, never[0], more(len(never))))
		}
		if len(early) > 0 {
			lines = append(lines, fmt.Sprintf("%s shows %s%s, whose first publish was called after the read returned", name, early[0], more(len(early))))
		}
		if len(misplaced) > 0 {
			lines = append(lines, fmt.Sprintf("%s shows %s%s", name, misplaced[0], more(len(misplaced))))
		}
		if len(differ) > 0 {
			lines = append(lines, fmt.Sprintf("%s shows %s%s", name, differ[0], more(len(differ))))
		}
		for j := range reads {
			if o := &reads[j]; o.ret < rd.call && len(o.read) > len(rd.read) {
				lines = append(lines, fmt.Sprintf("%s shows fewer entries than read %d (%d), which returned before it was called", name, o.id, len(o.read)))
				break
			}
		}
		for _, l := range lines {
			if !add("%s", l) {
				return out
			}
		}
	}
	return out
}

package federation

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Statement operations. Each contribution makes one kind of change to one set.
const (
	// OpAdd adds the payload's signals, with their labels, to the set. Its
	// publisher must own the set, and no signal may already be in it.
	OpAdd = "add"
	// OpRetract takes the payload's signals out of the set; the payload's
	// reason says why. Subscribers receive the retraction as tombstones.
	OpRetract = "retract"
	// OpRelabel replaces the labels of signals already in the set with the
	// labels they carry in the payload.
	OpRelabel = "relabel"
	// OpFeedback records an org's verdict on signals of a set it reads (but
	// does not own); each org's latest verdict per signal is what counts.
	OpFeedback = "feedback"
)

// Ops lists the statement operations.
var Ops = []string{OpAdd, OpRetract, OpRelabel, OpFeedback}

// Feedback verdicts.
const (
	VerdictTruePositive  = "true_positive"
	VerdictFalsePositive = "false_positive"
	VerdictDisputed      = "disputed"
)

// Verdicts lists the feedback verdicts.
var Verdicts = []string{VerdictTruePositive, VerdictFalsePositive, VerdictDisputed}

// Limits on one change beyond [MaxSignals].
const (
	// MaxReasonLen bounds a retraction's reason or a feedback note, in bytes.
	MaxReasonLen = 1024
	// MaxStatementLabels bounds the distinct labels one contribution's
	// signals may carry: the statement lists them all.
	MaxStatementLabels = 256
)

// A Change is what a contribution does to a set, before it is signed.
type Change struct {
	// Op is one of [Ops].
	Op string
	// Signals are the signals changed. Retract and feedback name signals by
	// type and value only (no labels); relabel gives each its new labels.
	Signals []*hashfedv1.Signal
	// Reason is required for a retraction and optional otherwise (a note
	// with a relabel or with feedback).
	Reason string
	// Verdict is required for feedback and empty otherwise.
	Verdict string
}

// CheckChange checks that payload is a well-formed change of kind op (with
// verdict, for feedback) and returns the sorted distinct signal types and
// labels its signals carry, as a statement must list them. It needs no
// state: whether the signals are in the set is the state machine's check.
func CheckChange(op, verdict string, p *hashfedv1.Payload) (types, labels []string, err error) {
	if !slices.Contains(Ops, op) {
		return nil, nil, fmt.Errorf("statement op %q is unknown (want one of %s)", op, strings.Join(Ops, ", "))
	}
	switch {
	case op == OpFeedback && !slices.Contains(Verdicts, verdict):
		return nil, nil, fmt.Errorf("feedback verdict %q is unknown (want one of %s)", verdict, strings.Join(Verdicts, ", "))
	case op != OpFeedback && verdict != "":
		return nil, nil, fmt.Errorf("a %s statement carries no verdict (got %q)", op, verdict)
	case op == OpRetract && strings.TrimSpace(p.GetReason()) == "":
		return nil, nil, errors.New("a retraction needs a reason")
	case len(p.GetReason()) > MaxReasonLen || !utf8.ValidString(p.GetReason()):
		return nil, nil, fmt.Errorf("the reason must be UTF-8 of at most %d bytes (got %d bytes)", MaxReasonLen, len(p.GetReason()))
	}
	sigs := p.GetSignals()
	if len(sigs) == 0 {
		return nil, nil, errors.New("a contribution needs at least one signal")
	}
	if len(sigs) > MaxSignals {
		return nil, nil, fmt.Errorf("a contribution holds at most %d signals, got %d: split them into several contributions", MaxSignals, len(sigs))
	}
	type key struct {
		t SignalType
		v string
	}
	seen := make(map[key]int, len(sigs))
	typeSet := make([]bool, len(SignalTypes))
	labelSet := map[string]bool{}
	for i, sig := range sigs {
		if err := ValidateSignal(sig); err != nil {
			return nil, nil, fmt.Errorf("signal %d: %w", i, err)
		}
		t, _ := SignalTypeFromProto(sig.Type)
		if (op == OpRetract || op == OpFeedback) && len(sig.Labels) > 0 {
			return nil, nil, fmt.Errorf("signal %d: a %s names signals by type and value only; drop its labels", i, op)
		}
		for j := 1; j < len(sig.Labels); j++ {
			if sig.Labels[j-1] >= sig.Labels[j] {
				return nil, nil, fmt.Errorf("signal %d: labels must be sorted and distinct", i)
			}
		}
		k := key{t, sig.Value}
		if j, dup := seen[k]; dup {
			return nil, nil, fmt.Errorf("signal %d duplicates signal %d (%s)", i, j, short(string(t)+":"+sig.Value))
		}
		seen[k] = i
		typeSet[slices.Index(SignalTypes, t)] = true
		for _, l := range sig.Labels {
			labelSet[l] = true
		}
	}
	for i, ok := range typeSet {
		if ok {
			types = append(types, string(SignalTypes[i]))
		}
	}
	slices.Sort(types)
	if len(labelSet) > MaxStatementLabels {
		return nil, nil, fmt.Errorf("the signals carry %d distinct labels, at most %d allowed in one contribution: split them into several contributions", len(labelSet), MaxStatementLabels)
	}
	for l := range labelSet {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	return types, labels, nil
}

// SelectsPayload is the rule a subscription's filters follow, shared by the
// node (which leaves out payloads it does not select) and the subscriber
// (which checks every omission against the signed statement): sets, types
// and labels, when not empty, must each meet the statement. Only adds are
// filtered by label: retractions and relabels must reach everyone who may
// hold the signal (a relabel may move it out of the labels followed), and
// feedback carries no labels. Read permission is checked apart.
func SelectsPayload(st *Statement, sets, types, labels []string) bool {
	meets := func(have, want []string) bool {
		return len(want) == 0 || slices.ContainsFunc(have, func(x string) bool { return slices.Contains(want, x) })
	}
	return (len(sets) == 0 || slices.Contains(sets, st.Set)) &&
		meets(st.Types, types) &&
		(st.Op != OpAdd || meets(st.Labels, labels))
}

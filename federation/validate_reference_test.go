package federation_test

// The checks below run in every state machine, so a faster version must
// accept and refuse exactly what the version before it did, with the same
// message: otherwise nodes of two versions would disagree on a command.
// This file keeps the previous implementations (as of commit dc05491) as a
// reference, and fuzz targets compare the current ones against them.

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

func refShort(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

func refCanonicalValue(t federation.SignalType, value string) (string, error) {
	v := strings.TrimSpace(value)
	switch t {
	case federation.MD5, federation.SHA1, federation.SHA256, federation.PDQ:
		want := map[federation.SignalType]int{federation.MD5: 32, federation.SHA1: 40, federation.SHA256: 64, federation.PDQ: 64}[t]
		if len(v) != want {
			return "", fmt.Errorf("%s value %q has %d characters, want %d hex digits", t, refShort(v), len(v), want)
		}
		if _, err := hex.DecodeString(v); err != nil {
			return "", fmt.Errorf("%s value %q is not hexadecimal", t, refShort(v))
		}
		return strings.ToLower(v), nil
	case federation.PhotoDNA:
		b, err := base64.StdEncoding.Strict().DecodeString(v)
		if err != nil {
			return "", fmt.Errorf("photodna value %q is not standard base64", refShort(v))
		}
		if len(b) != 144 {
			return "", fmt.Errorf("photodna value decodes to %d bytes, want %d", len(b), 144)
		}
		return base64.StdEncoding.EncodeToString(b), nil
	default:
		return "", fmt.Errorf("unknown signal type %q", string(t))
	}
}

func refValidateSignal(s *hashfedv1.Signal) error {
	t, err := federation.SignalTypeFromProto(s.GetType())
	if err != nil {
		return fmt.Errorf("%w (want one of md5, sha1, sha256, pdq, photodna)", err)
	}
	c, err := refCanonicalValue(t, s.GetValue())
	if err != nil {
		return err
	}
	if c != s.GetValue() {
		return fmt.Errorf("%s value %q is not in canonical form (want %q)", t, refShort(s.GetValue()), refShort(c))
	}
	if len(s.GetLabels()) > 16 {
		return fmt.Errorf("signal %s:%s has %d labels, at most %d allowed", t, refShort(c), len(s.GetLabels()), 16)
	}
	for _, l := range s.GetLabels() {
		if l == "" || len(l) > 64 || !utf8.ValidString(l) || strings.ContainsAny(l, "\x00\n\r\t,") {
			return fmt.Errorf("signal %s:%s has label %q: labels are 1-%d bytes of UTF-8 without commas, tabs or newlines", t, refShort(c), refShort(l), 64)
		}
	}
	return nil
}

func refCheckChange(op, verdict string, p *hashfedv1.Payload) (types, labels []string, err error) {
	if !slices.Contains(federation.Ops, op) {
		return nil, nil, fmt.Errorf("statement op %q is unknown (want one of %s)", op, strings.Join(federation.Ops, ", "))
	}
	switch {
	case op == federation.OpFeedback && !slices.Contains(federation.Verdicts, verdict):
		return nil, nil, fmt.Errorf("feedback verdict %q is unknown (want one of %s)", verdict, strings.Join(federation.Verdicts, ", "))
	case op != federation.OpFeedback && verdict != "":
		return nil, nil, fmt.Errorf("a %s statement carries no verdict (got %q)", op, verdict)
	case op == federation.OpRetract && strings.TrimSpace(p.GetReason()) == "":
		return nil, nil, errors.New("a retraction needs a reason")
	case len(p.GetReason()) > federation.MaxReasonLen || !utf8.ValidString(p.GetReason()):
		return nil, nil, fmt.Errorf("the reason must be UTF-8 of at most %d bytes (got %d bytes)", federation.MaxReasonLen, len(p.GetReason()))
	}
	sigs := p.GetSignals()
	if len(sigs) == 0 {
		return nil, nil, errors.New("a contribution needs at least one signal")
	}
	if len(sigs) > federation.MaxSignals {
		return nil, nil, fmt.Errorf("a contribution holds at most %d signals, got %d: split them into several contributions", federation.MaxSignals, len(sigs))
	}
	seen := make(map[string]int, len(sigs))
	typeSet := make([]bool, len(federation.SignalTypes))
	labelSet := map[string]bool{}
	for i, sig := range sigs {
		if err := refValidateSignal(sig); err != nil {
			return nil, nil, fmt.Errorf("signal %d: %w", i, err)
		}
		t, _ := federation.SignalTypeFromProto(sig.Type)
		if (op == federation.OpRetract || op == federation.OpFeedback) && len(sig.Labels) > 0 {
			return nil, nil, fmt.Errorf("signal %d: a %s names signals by type and value only; drop its labels", i, op)
		}
		if !slices.IsSorted(sig.Labels) || len(slices.Compact(slices.Clone(sig.Labels))) != len(sig.Labels) {
			return nil, nil, fmt.Errorf("signal %d: labels must be sorted and distinct", i)
		}
		k := string(t) + ":" + sig.Value
		if j, dup := seen[k]; dup {
			return nil, nil, fmt.Errorf("signal %d duplicates signal %d (%s)", i, j, refShort(k))
		}
		seen[k] = i
		typeSet[slices.Index(federation.SignalTypes, t)] = true
		for _, l := range sig.Labels {
			labelSet[l] = true
		}
	}
	for i, ok := range typeSet {
		if ok {
			types = append(types, string(federation.SignalTypes[i]))
		}
	}
	slices.Sort(types)
	if len(labelSet) > federation.MaxStatementLabels {
		return nil, nil, fmt.Errorf("the signals carry %d distinct labels, at most %d allowed in one contribution: split them into several contributions", len(labelSet), federation.MaxStatementLabels)
	}
	for l := range labelSet {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	return types, labels, nil
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// FuzzValidateSignalMatchesReference: ValidateSignal gives the verdict and
// message of the previous implementation for any signal.
func FuzzValidateSignalMatchesReference(f *testing.F) {
	for _, s := range benchSignals(20) {
		labels := s.Labels
		l1, l2 := "", ""
		if len(labels) > 0 {
			l1 = labels[0]
		}
		if len(labels) > 1 {
			l2 = labels[1]
		}
		f.Add(int32(s.Type), s.Value, l1, l2)
	}
	f.Add(int32(federation.MD5.Proto()), "D41D8CD98F00B204E9800998ECF8427E", "", "")
	f.Add(int32(federation.MD5.Proto()), "d41d8cd98f00b204e9800998ecf8427e", "A1", "B2")
	f.Add(int32(federation.SHA1.Proto()), " "+sha1Hex(7), "A1", "A1")
	f.Add(int32(federation.PhotoDNA.Proto()), photoDNA(3)[:100]+"\n"+photoDNA(3)[100:], "", "")
	f.Add(int32(federation.PhotoDNA.Proto()), photoDNA(3)[:190]+"==", "", "")
	f.Add(int32(99), "x", "a,b", "")
	f.Fuzz(func(t *testing.T, typ int32, value, l1, l2 string) {
		s := &hashfedv1.Signal{Type: hashfedv1.SignalType(typ), Value: value}
		for _, l := range []string{l1, l2} {
			if l != "" {
				s.Labels = append(s.Labels, l)
			}
		}
		got, want := errText(federation.ValidateSignal(s)), errText(refValidateSignal(s))
		if got != want {
			t.Fatalf("ValidateSignal(%v) = %s, the reference says %s", s, got, want)
		}
	})
}

// FuzzCheckChangeMatchesReference: CheckChange gives the types, labels and
// error of the previous implementation for any payload.
func FuzzCheckChangeMatchesReference(f *testing.F) {
	for i, op := range federation.Ops {
		p := &hashfedv1.Payload{Signals: benchSignals(12), Reason: "r"}
		if op == federation.OpRetract || op == federation.OpFeedback {
			for _, s := range p.Signals {
				s.Labels = nil
			}
		}
		b, err := proto.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		verdict := ""
		if op == federation.OpFeedback {
			verdict = federation.VerdictDisputed
		}
		f.Add(uint8(i), verdict, b)
	}
	dup, err := proto.Marshal(&hashfedv1.Payload{Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1)), sig(federation.MD5, md5Hex(1))}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), "", dup)
	f.Fuzz(func(t *testing.T, opIndex uint8, verdict string, payload []byte) {
		var p hashfedv1.Payload
		if proto.Unmarshal(payload, &p) != nil {
			return
		}
		op := "bogus"
		if int(opIndex) < len(federation.Ops) {
			op = federation.Ops[opIndex]
		}
		types, labels, err := federation.CheckChange(op, verdict, &p)
		rTypes, rLabels, rErr := refCheckChange(op, verdict, &p)
		if errText(err) != errText(rErr) || !reflect.DeepEqual(types, rTypes) || !reflect.DeepEqual(labels, rLabels) {
			t.Fatalf("CheckChange = %v, %v, %s; the reference says %v, %v, %s", types, labels, errText(err), rTypes, rLabels, errText(rErr))
		}
	})
}

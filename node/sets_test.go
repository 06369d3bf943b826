package node_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/node"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// newSetFederation is the harness's federation plus platform, a second
// subscriber org (running no node) that reads ngo/csam next to techco, so
// that two reader orgs can give feedback. iwf publishes and reads no set
// of ngo's; auditor holds the auditor role and reads nothing.
func newSetFederation(t *testing.T) *localfed.Federation {
	t.Helper()
	opts := testOptions(t.TempDir())
	opts.Orgs = append(opts.Orgs, localfed.OrgSpec{Name: "platform", Roles: []federation.Role{federation.RoleSubscriber}})
	opts.Sets[0].Readers = []string{"techco", "platform"}
	return startFederation(t, opts)
}

// names returns signals as a retraction or feedback names them: type and
// value, no labels.
func names(sigs ...*hashfedv1.Signal) []*hashfedv1.Signal {
	var out []*hashfedv1.Signal
	for _, s := range sigs {
		out = append(out, &hashfedv1.Signal{Type: s.Type, Value: s.Value})
	}
	return out
}

// change publishes ch as org's next contribution to set through c.
func change(t *testing.T, f *localfed.Federation, c *client.Client, org, set string, ch federation.Change) *client.PublishResult {
	t.Helper()
	res, err := c.PublishChange(testCtx(t), signer(t, f, org), set, 0, ch, "")
	if err != nil {
		t.Fatalf("%s's %s %s to %s: %v", org, ch.Op, ch.Verdict, set, err)
	}
	return res
}

// listAll lists set through c's SetService page by page, checking that no
// page is larger than asked and no signal comes twice, and returns the
// signals and how many pages it took.
func listAll(t *testing.T, c *client.Client, set string, pageSize int32, minDisputes int64) ([]*hashfedv1.SetSignal, int) {
	t.Helper()
	sc := hashfedv1.NewSetServiceClient(c.Conn())
	req := &hashfedv1.ListSignalsRequest{Set: set, PageSize: pageSize, MinDisputes: minDisputes}
	var out []*hashfedv1.SetSignal
	pages := 0
	for {
		res, err := sc.ListSignals(testCtx(t), req)
		if err != nil {
			t.Fatalf("listing %s (page %d): %v", set, pages+1, err)
		}
		pages++
		if n := len(res.GetSignals()); pageSize > 0 && n > int(pageSize) {
			t.Fatalf("page %d holds %d signals, more than the %d asked for", pages, n, pageSize)
		}
		out = append(out, res.GetSignals()...)
		if res.GetNextPageToken() == "" {
			break
		}
		req.PageToken = res.GetNextPageToken()
	}
	seen := map[string]bool{}
	for _, s := range out {
		k := s.GetType().String() + " " + s.GetValue() + s.GetValueSha256()
		if seen[k] {
			t.Fatalf("%s listed twice", k)
		}
		seen[k] = true
	}
	return out, pages
}

func digest(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}

// byValue indexes a listing by value.
func byValue(sigs []*hashfedv1.SetSignal) map[string]*hashfedv1.SetSignal {
	m := map[string]*hashfedv1.SetSignal{}
	for _, s := range sigs {
		m[s.GetValue()] = s
	}
	return m
}

func wantCode(t *testing.T, what string, err error, code codes.Code, says ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: got %v, want code %v", what, err, code)
		return
	}
	for _, s := range says {
		if msg := status.Convert(err).Message(); !strings.Contains(msg, s) {
			t.Errorf("%s: message %q does not say %q", what, msg, s)
		}
	}
}

// TestSetState: adds, a retraction, a relabel and feedback from two reader
// orgs, published through one node, are queried at once through others:
// the count, every page of the listing with labels and tallies, dispute
// thresholds, lookups, an auditor's listing without values, and every
// refusal.
func TestSetState(t *testing.T) {
	f := newSetFederation(t)
	ctx := testCtx(t)
	const set = "ngo/csam"
	ngo := dial(t, f, "ngo", "ngo-1")
	sigs := sampleSignals(0, 25)

	added := change(t, f, ngo, "ngo", set, federation.Change{Op: federation.OpAdd, Signals: sigs})
	change(t, f, ngo, "ngo", set, federation.Change{Op: federation.OpRetract, Signals: names(sigs[20:]...), Reason: "false positives, reviewed"})
	var relabels []*hashfedv1.Signal
	for _, s := range sigs[:3] {
		relabels = append(relabels, &hashfedv1.Signal{Type: s.Type, Value: s.Value, Labels: []string{"C1", "C2"}})
	}
	relabelled := change(t, f, ngo, "ngo", set, federation.Change{Op: federation.OpRelabel, Signals: relabels})

	// What a reader should see: signals 0-19, the first three relabelled.
	want := map[string]*hashfedv1.SetSignal{}
	for i, s := range sigs[:20] {
		w := &hashfedv1.SetSignal{Type: s.Type, Value: s.Value, Labels: s.Labels, AddedAt: added.Index, ChangedAt: added.Index, Tally: &hashfedv1.Tally{}}
		if i < 3 {
			w.Labels, w.ChangedAt = []string{"C1", "C2"}, relabelled.Index
		}
		want[s.Value] = w
	}

	// Asked right away through the nodes of other orgs, which catch up with
	// the leader first.
	techco := dial(t, f, "techco", "techco-1")
	auditor := dial(t, f, "auditor", "auditor-1")
	iwf := dial(t, f, "iwf", "auditor-1")
	platform := dial(t, f, "platform", "techco-1")
	for _, tc := range []struct {
		c      *client.Client
		access hashfedv1.SetAccess
	}{
		{techco, hashfedv1.SetAccess_SET_ACCESS_VALUES},
		{ngo, hashfedv1.SetAccess_SET_ACCESS_VALUES},
		{auditor, hashfedv1.SetAccess_SET_ACCESS_DIGESTS},
		{iwf, hashfedv1.SetAccess_SET_ACCESS_NONE},
	} {
		got, err := tc.c.GetSet(ctx, set)
		if err != nil {
			t.Fatalf("GetSet as %s: %v", tc.c.Identity().Org, err)
		}
		wantSet := &hashfedv1.GetSetResponse{
			Set: set, Owner: "ngo", Count: 20, NextSequence: 4, Access: tc.access,
			Readers: []string{"techco", "platform"},
		}
		for _, ty := range federation.SignalTypes {
			wantSet.Types = append(wantSet.Types, ty.Proto())
		}
		if d := cmp.Diff(wantSet, got, protocmp.Transform(), protocmp.SortRepeatedFields(wantSet, "readers", "types")); d != "" {
			t.Errorf("GetSet as %s (-want +got):\n%s", tc.c.Identity().Org, d)
		}
	}

	// Several pages hold exactly the current signals, with their labels.
	got, pages := listAll(t, techco, set, 6, 0)
	if pages != 4 {
		t.Errorf("20 signals in pages of 6 took %d pages, want 4", pages)
	}
	if d := cmp.Diff(want, byValue(got), protocmp.Transform()); d != "" {
		t.Errorf("listing after add, retract and relabel (-want +got):\n%s", d)
	}
	// The client library walks the pages itself.
	var viaClient []*hashfedv1.SetSignal
	if err := platform.ListSignals(ctx, set, client.ListOptions{PageSize: 7}, func(s *hashfedv1.SetSignal) error {
		viaClient = append(viaClient, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(got, viaClient, protocmp.Transform()); d != "" {
		t.Errorf("client.ListSignals differs from the pages (-pages +client):\n%s", d)
	}

	// Feedback from the two reader orgs; techco changes its mind on
	// sigs[4] and platform repeats itself on sigs[3]: each org counts once.
	fb := func(c *client.Client, org, verdict string, ss ...*hashfedv1.Signal) {
		change(t, f, c, org, set, federation.Change{Op: federation.OpFeedback, Verdict: verdict, Signals: names(ss...), Reason: "reviewed"})
	}
	fb(techco, "techco", federation.VerdictFalsePositive, sigs[3], sigs[4])
	fb(platform, "platform", federation.VerdictDisputed, sigs[3], sigs[5])
	fb(techco, "techco", federation.VerdictTruePositive, sigs[4])
	fb(platform, "platform", federation.VerdictDisputed, sigs[3])
	want[sigs[3].Value].Tally = &hashfedv1.Tally{FalsePositive: 1, Disputed: 1}
	want[sigs[4].Value].Tally = &hashfedv1.Tally{TruePositive: 1}
	want[sigs[5].Value].Tally = &hashfedv1.Tally{Disputed: 1}

	got, _ = listAll(t, dial(t, f, "ngo", "auditor-1"), set, 0, 0)
	if d := cmp.Diff(want, byValue(got), protocmp.Transform()); d != "" {
		t.Errorf("the owner's listing after feedback (-want +got):\n%s", d)
	}
	for _, tc := range []struct {
		min  int64
		want []*hashfedv1.Signal
	}{
		{1, []*hashfedv1.Signal{sigs[3], sigs[5]}},
		{2, []*hashfedv1.Signal{sigs[3]}},
		{3, nil},
	} {
		got, _ := listAll(t, techco, set, 1, tc.min)
		var gotValues, wantValues []string
		for _, s := range got {
			gotValues = append(gotValues, s.GetValue())
			if d := cmp.Diff(want[s.GetValue()], s, protocmp.Transform()); d != "" {
				t.Errorf("min_disputes %d: signal (-want +got):\n%s", tc.min, d)
			}
		}
		for _, s := range tc.want {
			wantValues = append(wantValues, s.Value)
		}
		slices.Sort(gotValues)
		slices.Sort(wantValues)
		if !slices.Equal(gotValues, wantValues) {
			t.Errorf("min_disputes %d listed %v, want %v", tc.min, gotValues, wantValues)
		}
	}

	// The auditor sees the same listing with digests instead of values.
	wantDigests := map[string]*hashfedv1.SetSignal{}
	for v, w := range want {
		d := proto.Clone(w).(*hashfedv1.SetSignal)
		d.Value, d.ValueSha256 = "", digest(v)
		wantDigests[d.ValueSha256] = d
	}
	got, _ = listAll(t, auditor, set, 8, 0)
	gotDigests := map[string]*hashfedv1.SetSignal{}
	for _, s := range got {
		if s.GetValue() != "" {
			t.Fatalf("the auditor received a value: %v", s)
		}
		gotDigests[s.GetValueSha256()] = s
	}
	if d := cmp.Diff(wantDigests, gotDigests, protocmp.Transform()); d != "" {
		t.Errorf("the auditor's listing (-want +got):\n%s", d)
	}
	disputed, _ := listAll(t, auditor, set, 0, 2)
	if len(disputed) != 1 || disputed[0].GetValueSha256() != digest(sigs[3].Value) || disputed[0].GetValue() != "" {
		t.Errorf("the auditor's listing of signals with 2 disputes: %v, want sigs[3] as a digest", disputed)
	}

	// Lookups: readers see the value, the auditor its digest; a value is
	// canonicalised; a retracted or never added signal is not found.
	upper := strings.ToUpper(sigs[3].Value)
	for _, tc := range []struct {
		c    *client.Client
		want *hashfedv1.SetSignal
	}{
		{techco, want[sigs[3].Value]},
		{auditor, wantDigests[digest(sigs[3].Value)]},
	} {
		s, err := tc.c.LookupSignal(ctx, set, federation.PDQ, " "+upper+" ")
		if err != nil {
			t.Fatalf("lookup as %s: %v", tc.c.Identity().Org, err)
		}
		if d := cmp.Diff(tc.want, s, protocmp.Transform()); d != "" {
			t.Errorf("lookup as %s (-want +got):\n%s", tc.c.Identity().Org, d)
		}
	}
	for _, s := range []*hashfedv1.Signal{sigs[22], sampleSignals(40, 1)[0]} {
		ty, _ := federation.SignalTypeFromProto(s.Type)
		if got, err := techco.LookupSignal(ctx, set, ty, s.Value); err != nil || got != nil {
			t.Errorf("lookup of %s %s, not in the set: %v, %v; want not found", ty, s.Value, got, err)
		}
	}

	// Refusals.
	sc := func(c *client.Client) hashfedv1.SetServiceClient { return hashfedv1.NewSetServiceClient(c.Conn()) }
	page, err := sc(techco).ListSignals(ctx, &hashfedv1.ListSignalsRequest{Set: set, PageSize: 2})
	if err != nil || page.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", page, err)
	}
	_, err = sc(iwf).ListSignals(ctx, &hashfedv1.ListSignalsRequest{Set: set})
	wantCode(t, "a non-reader listing", err, codes.PermissionDenied, `"ngo/csam"`, `org "iwf"`, "set-readers")
	_, err = sc(iwf).LookupSignal(ctx, &hashfedv1.LookupSignalRequest{Set: set, Type: sigs[3].Type, Value: sigs[3].Value})
	wantCode(t, "a non-reader looking up", err, codes.PermissionDenied, `"ngo/csam"`, "set-readers")
	_, err = sc(techco).GetSet(ctx, &hashfedv1.GetSetRequest{Set: "ngo/nope"})
	wantCode(t, "GetSet of an unknown set", err, codes.NotFound, `"ngo/nope"`)
	_, err = sc(techco).ListSignals(ctx, &hashfedv1.ListSignalsRequest{Set: "ngo/nope"})
	wantCode(t, "listing an unknown set", err, codes.NotFound, `"ngo/nope"`)
	_, err = sc(techco).LookupSignal(ctx, &hashfedv1.LookupSignalRequest{Set: "ngo/nope", Type: sigs[0].Type, Value: sigs[0].Value})
	wantCode(t, "looking up in an unknown set", err, codes.NotFound, `"ngo/nope"`)
	_, err = sc(techco).LookupSignal(ctx, &hashfedv1.LookupSignalRequest{Set: set, Type: hashfedv1.SignalType_SIGNAL_TYPE_MD5, Value: "not a hash"})
	wantCode(t, "looking up a malformed value", err, codes.InvalidArgument, "md5")
	_, err = sc(techco).LookupSignal(ctx, &hashfedv1.LookupSignalRequest{Set: set, Value: sigs[0].Value})
	wantCode(t, "looking up without a type", err, codes.InvalidArgument, "signal type")
	for _, tc := range []struct {
		name string
		req  *hashfedv1.ListSignalsRequest
		says string
	}{
		{"a token that is not base64", &hashfedv1.ListSignalsRequest{Set: set, PageToken: "!!"}, "not one this node gave out"},
		{"a token of another set's listing", &hashfedv1.ListSignalsRequest{Set: "iwf/list", PageToken: page.GetNextPageToken()}, `continues a listing of set "ngo/csam"`},
		{"a token with a forged position", &hashfedv1.ListSignalsRequest{Set: set, PageToken: base64.RawURLEncoding.EncodeToString([]byte(set + "\nnot hex"))}, "not one this node gave out"},
		{"a negative page size", &hashfedv1.ListSignalsRequest{Set: set, PageSize: -1}, "page_size"},
		{"a negative dispute threshold", &hashfedv1.ListSignalsRequest{Set: set, MinDisputes: -1}, "min_disputes"},
	} {
		_, err := sc(techco).ListSignals(ctx, tc.req)
		wantCode(t, tc.name, err, codes.InvalidArgument, tc.says)
	}
	// The refused calls spoiled nothing: the token still continues.
	rest, err := sc(techco).ListSignals(ctx, &hashfedv1.ListSignalsRequest{Set: set, PageSize: 100, PageToken: page.GetNextPageToken()})
	if err != nil || len(page.GetSignals())+len(rest.GetSignals()) != 20 || rest.GetNextPageToken() != "" {
		t.Errorf("the rest after the first page: %d signals, token %q, %v; want 18 and the end", len(rest.GetSignals()), rest.GetNextPageToken(), err)
	}

	// Retracting a disputed signal ends its feedback; adding it again
	// starts afresh.
	change(t, f, ngo, "ngo", set, federation.Change{Op: federation.OpRetract, Signals: names(sigs[3]), Reason: "disputed by two readers"})
	if got, _ := listAll(t, techco, set, 0, 2); len(got) != 0 {
		t.Errorf("after its retraction, min_disputes 2 lists %v", got)
	}
	if s, err := techco.GetSet(ctx, set); err != nil || s.GetCount() != 19 {
		t.Errorf("count after retracting one more: %v, %v; want 19", s, err)
	}
	readded := change(t, f, ngo, "ngo", set, federation.Change{Op: federation.OpAdd, Signals: sigs[3:4]})
	s, err := techco.LookupSignal(ctx, set, federation.PDQ, sigs[3].Value)
	w := &hashfedv1.SetSignal{Type: sigs[3].Type, Value: sigs[3].Value, Labels: sigs[3].Labels, AddedAt: readded.Index, ChangedAt: readded.Index, Tally: &hashfedv1.Tally{}}
	if d := cmp.Diff(w, s, protocmp.Transform()); err != nil || d != "" {
		t.Errorf("the signal added again (%v) (-want +got):\n%s", err, d)
	}
}

// rawChange signs a contribution without BuildChange's checks, as a
// client that skips them would send it.
func rawChange(t *testing.T, s *federation.Signer, set string, seq uint64, op string, p *hashfedv1.Payload) *hashfedv1.Contribution {
	t.Helper()
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, sig := range p.Signals {
		ty, _ := federation.SignalTypeFromProto(sig.Type)
		if !slices.Contains(types, string(ty)) {
			types = append(types, string(ty))
		}
	}
	slices.Sort(types)
	sum := sha256.Sum256(payload)
	env, err := s.SignStatement(&federation.Statement{
		Federation: fedName, Org: s.Org, Set: set, Sequence: seq, Op: op,
		Count: len(p.Signals), Types: types, PayloadSHA256: hex.EncodeToString(sum[:]),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &hashfedv1.Contribution{Envelope: env, Payload: payload}
}

// TestSetChangeRules: the state machine's rules for changes, end to end.
// Each refused change gets the right code and a message that says why, and
// changes nothing: not the ledger, not the set, not the sequence numbers.
func TestSetChangeRules(t *testing.T) {
	f := newSetFederation(t)
	ctx := testCtx(t)
	const set = "ngo/csam"
	ngo := dial(t, f, "ngo", "techco-1")
	sigs := sampleSignals(0, 5)
	first := change(t, f, ngo, "ngo", set, federation.Change{Op: federation.OpAdd, Signals: sigs})
	absent := sampleSignals(10, 1)[0]

	build := func(org string, seq uint64, ch federation.Change) *hashfedv1.Contribution {
		c, _, err := federation.BuildChange(signer(t, f, org), fedName, set, seq, ch, "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name string
		org  string
		c    *hashfedv1.Contribution
		code codes.Code
		says []string
	}{
		{"retracting a signal not in the set", "ngo",
			build("ngo", 2, federation.Change{Op: federation.OpRetract, Signals: names(absent), Reason: "gone"}),
			codes.NotFound, []string{"is not in set", "ngo/csam"}},
		{"retracting one signal in the set and one not", "ngo",
			build("ngo", 2, federation.Change{Op: federation.OpRetract, Signals: names(sigs[0], absent), Reason: "gone"}),
			codes.NotFound, []string{"signal 1", "is not in set"}},
		{"relabelling a signal not in the set", "ngo",
			build("ngo", 2, federation.Change{Op: federation.OpRelabel, Signals: []*hashfedv1.Signal{{Type: absent.Type, Value: absent.Value, Labels: []string{"B1"}}}}),
			codes.NotFound, []string{"is not in set"}},
		{"adding a signal already in the set", "ngo",
			build("ngo", 2, federation.Change{Op: federation.OpAdd, Signals: []*hashfedv1.Signal{absent, sigs[2]}}),
			codes.AlreadyExists, []string{"signal 1", "already in set", "relabel it"}},
		{"retracting without a reason", "ngo",
			rawChange(t, signer(t, f, "ngo"), set, 2, federation.OpRetract, &hashfedv1.Payload{Signals: names(sigs[0])}),
			codes.InvalidArgument, []string{"needs a reason"}},
		{"feedback by the set's owner", "ngo",
			build("ngo", 2, federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictTruePositive, Signals: names(sigs[0])}),
			codes.PermissionDenied, []string{"owns set"}},
		{"feedback by an org that does not read the set", "iwf",
			build("iwf", 1, federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictDisputed, Signals: names(sigs[0])}),
			codes.PermissionDenied, []string{`org "iwf" does not read set "ngo/csam"`}},
		{"feedback by an auditor org", "auditor",
			build("auditor", 1, federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictDisputed, Signals: names(sigs[0])}),
			codes.PermissionDenied, []string{"role"}},
		{"feedback on a signal not in the set", "techco",
			build("techco", 1, federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictFalsePositive, Signals: names(absent)}),
			codes.NotFound, []string{"is not in set"}},
		{"a reader retracting", "techco",
			build("techco", 1, federation.Change{Op: federation.OpRetract, Signals: names(sigs[0]), Reason: "mine now"}),
			codes.PermissionDenied, []string{"publisher"}},
	}
	before := converge(t, f, first.TreeSize)
	for _, tc := range cases {
		_, err := dial(t, f, tc.org, "auditor-1").Publisher.Publish(ctx, &hashfedv1.PublishRequest{Contribution: tc.c})
		wantCode(t, tc.name, err, tc.code, tc.says...)
	}
	for id, cp := range checkpoints(t, f) {
		if cp != before {
			t.Errorf("node %s moved from %+v to %+v after refused changes", id, before, cp)
		}
	}
	st, err := ngo.GetSet(ctx, set)
	if err != nil || st.GetCount() != 5 || st.GetNextSequence() != 2 {
		t.Fatalf("after refused changes the set holds %d signals, next sequence %d (%v); want 5 and 2", st.GetCount(), st.GetNextSequence(), err)
	}
	got, _ := listAll(t, ngo, set, 0, 0)
	var wantSet []*hashfedv1.SetSignal
	for _, s := range sigs {
		wantSet = append(wantSet, &hashfedv1.SetSignal{Type: s.Type, Value: s.Value, Labels: s.Labels, AddedAt: first.Index, ChangedAt: first.Index, Tally: &hashfedv1.Tally{}})
	}
	if d := cmp.Diff(byValue(wantSet), byValue(got), protocmp.Transform()); d != "" {
		t.Errorf("the set after refused changes (-want +got):\n%s", d)
	}
	// The sequence numbers the refusals carried are still free.
	next := change(t, f, ngo, "ngo", set, federation.Change{Op: federation.OpRetract, Signals: names(sigs[0]), Reason: "now for real"})
	if next.Index != first.Index+1 || next.Statement.Sequence != 2 {
		t.Errorf("the next change landed at index %d as sequence %d, want %d and 2", next.Index, next.Statement.Sequence, first.Index+1)
	}
	fb := change(t, f, dial(t, f, "techco", "ngo-1"), "techco", set, federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictTruePositive, Signals: names(sigs[1])})
	if fb.Statement.Sequence != 1 {
		t.Errorf("techco's first feedback carries sequence %d, want 1", fb.Statement.Sequence)
	}
}

// TestListSignalsPageBytes: a full page of PhotoDNA signals carrying the
// most and longest labels would not fit in one gRPC message; the node ends
// such a page early and the listing still holds every signal.
func TestListSignalsPageBytes(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	// 4000 signals of about 1.25 KB each: 5 MB, more than a message holds.
	const set, n, perContribution = "ngo/csam", 4000, 500
	var labels []string
	for i := range 16 {
		labels = append(labels, fmt.Sprintf("L%02d-%s", i, strings.Repeat("x", 60)))
	}
	var sigs []*hashfedv1.Signal
	for i := range n {
		var b []byte
		for j := 0; len(b) < 144; j++ {
			sum := sha256.Sum256(fmt.Appendf(nil, "page bytes %d %d", i, j))
			b = append(b, sum[:]...)
		}
		sigs = append(sigs, &hashfedv1.Signal{Type: hashfedv1.SignalType_SIGNAL_TYPE_PHOTODNA, Value: base64.StdEncoding.EncodeToString(b[:144]), Labels: labels})
	}
	ngo := dial(t, f, "ngo", "ngo-1")
	for i := 0; i < n; i += perContribution {
		change(t, f, ngo, "ngo", set, federation.Change{Op: federation.OpAdd, Signals: sigs[i : i+perContribution]})
	}
	sc := hashfedv1.NewSetServiceClient(dial(t, f, "techco", "techco-1").Conn())
	req := &hashfedv1.ListSignalsRequest{Set: set, PageSize: 10000}
	seen := map[string]bool{}
	pages := 0
	for {
		res, err := sc.ListSignals(ctx, req)
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		if size := proto.Size(res); size > node.MaxMessageSize {
			t.Fatalf("page %d is %d bytes, more than the %d a message may hold", pages, size, node.MaxMessageSize)
		}
		for _, s := range res.GetSignals() {
			if seen[s.GetValue()] || len(s.GetLabels()) != len(labels) {
				t.Fatalf("page %d: signal %s listed twice, or with %d labels", pages, s.GetValue(), len(s.GetLabels()))
			}
			seen[s.GetValue()] = true
		}
		if res.GetNextPageToken() == "" {
			break
		}
		req.PageToken = res.GetNextPageToken()
	}
	if len(seen) != n || pages < 2 {
		t.Errorf("listed %d signals in %d pages, want %d in several", len(seen), pages, n)
	}
}

package federation_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/mod/sumdb/note"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/federation"
)

func TestGenesisRoundTrip(t *testing.T) {
	doc, _ := newTestGenesis(t)
	g, err := federation.ParseGenesis(doc)
	if err != nil {
		t.Fatalf("ParseGenesis(test genesis): %v", err)
	}
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, doc) {
		t.Errorf("Marshal(ParseGenesis(doc)) differs from doc:\n%s", cmp.Diff(string(doc), string(b)))
	}
	g2, err := federation.ParseGenesis(b)
	if err != nil {
		t.Fatalf("ParseGenesis(Marshal(g)): %v", err)
	}
	if diff := cmp.Diff(g, g2); diff != "" {
		t.Errorf("genesis changed in a Marshal/ParseGenesis round trip (-first +second):\n%s", diff)
	}
	if federation.Digest(doc) != federation.Digest(b) {
		t.Error("Digest differs for identical documents")
	}
}

func TestGenesisAccessors(t *testing.T) {
	doc, _ := newTestGenesis(t)
	g, err := federation.ParseGenesis(doc)
	if err != nil {
		t.Fatal(err)
	}
	if o := g.Org("iwf"); o == nil || o.Name != "iwf" {
		t.Errorf(`Org("iwf") = %v`, o)
	}
	if o := g.Org("nobody"); o != nil {
		t.Errorf(`Org("nobody") = %v, want nil`, o)
	}
	if n := g.Node("ngo-1"); n == nil || n.Org != "ngo" {
		t.Errorf(`Node("ngo-1") = %v`, n)
	}
	if n := g.Node("nobody"); n != nil {
		t.Errorf(`Node("nobody") = %v, want nil`, n)
	}
	for _, tt := range []struct {
		org  string
		role federation.Role
		want bool
	}{
		{"ngo", federation.RolePublisher, true},
		{"ngo", federation.RoleOperator, true},
		{"ngo", federation.RoleSubscriber, false},
		{"techco", federation.RoleSubscriber, true},
		{"techco", federation.RolePublisher, false},
		{"nobody", federation.RolePublisher, false}, // nil *Org
	} {
		if got := g.Org(tt.org).HasRole(tt.role); got != tt.want {
			t.Errorf("Org(%q).HasRole(%q) = %v, want %v", tt.org, tt.role, got, tt.want)
		}
	}
	ca, err := g.Org("ngo").CACertificate()
	if err != nil || !ca.IsCA || ca.Subject.Organization[0] != "ngo" {
		t.Errorf(`Org("ngo").CACertificate() = %v, %v`, ca, err)
	}
	if got := g.Sets[0].Owner(); got != "ngo" {
		t.Errorf("Owner() = %q, want ngo", got)
	}
	vs, err := g.CheckpointVerifiers()
	if err != nil {
		t.Fatal(err)
	}
	nv, err := note.NewVerifier(g.Nodes[0].CheckpointKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vs.Verifier(federation.CheckpointKeyName(testFed, "ngo-1"), nv.KeyHash())
	if err != nil || v.Name() != testFed+"/ngo-1" {
		t.Errorf("CheckpointVerifiers().Verifier(ngo-1) = %v, %v", v, err)
	}
}

func TestParseGenesisRejects(t *testing.T) {
	doc, _ := newTestGenesis(t)
	otherCA, err := certs.NewCA("ngo", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM, _, err := otherCA.IssueNode("n1", []string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	iwfVoter := federation.Node{
		ID: "iwf-1", Org: "iwf", RaftAddress: "127.0.0.1:7002", APIAddress: "127.0.0.1:8002",
		CheckpointKey: checkpointVKey(t, federation.CheckpointKeyName(testFed, "iwf-1")), Voter: true,
	}
	for _, tt := range []struct {
		name string
		mod  func(g *federation.Genesis) // applied to a parsed copy before Marshal
		raw  func(b []byte) []byte       // applied to the marshalled bytes
		want string                      // substring of the error
	}{
		{
			name: "bad version",
			mod:  func(g *federation.Genesis) { g.Version = 2 },
			want: "version 2, this hashfed reads version 1",
		},
		{
			name: "missing version",
			raw:  func(b []byte) []byte { return bytes.Replace(b, []byte(`"version": 1,`), nil, 1) },
			want: "version 0",
		},
		{
			name: "bad federation name",
			mod:  func(g *federation.Genesis) { g.Federation = "has space" },
			want: "federation name",
		},
		{
			name: "federation name with plus",
			mod:  func(g *federation.Genesis) { g.Federation = "a+b" },
			want: "federation name",
		},
		{
			name: "no orgs",
			mod:  func(g *federation.Genesis) { g.Orgs = nil },
			want: "no orgs",
		},
		{
			name: "bad org name",
			mod:  func(g *federation.Genesis) { g.Orgs[2].Name = "TechCo" },
			want: `name "TechCo"`,
		},
		{
			name: "duplicate org",
			mod:  func(g *federation.Genesis) { g.Orgs = append(g.Orgs, g.Orgs[1]) },
			want: `org "iwf" listed twice`,
		},
		{
			name: "org without roles",
			mod:  func(g *federation.Genesis) { g.Orgs[2].Roles = nil },
			want: `org "techco" has no roles`,
		},
		{
			name: "unknown role",
			mod:  func(g *federation.Genesis) { g.Orgs[1].Roles = append(g.Orgs[1].Roles, "admin") },
			want: `unknown role "admin"`,
		},
		{
			name: "CA for another org",
			mod:  func(g *federation.Genesis) { g.Orgs[1].CACert = g.Orgs[0].CACert },
			want: `org "iwf": CA certificate is for organization`,
		},
		{
			name: "CA certificate missing",
			mod:  func(g *federation.Genesis) { g.Orgs[0].CACert = "" },
			want: "no PEM CERTIFICATE block",
		},
		{
			name: "CA certificate is a leaf",
			mod:  func(g *federation.Genesis) { g.Orgs[0].CACert = string(leafPEM) },
			want: "not a CA",
		},
		{
			name: "bad signing key",
			mod:  func(g *federation.Genesis) { g.Orgs[2].SigningKey = "nope" },
			want: `org "techco": signing key`,
		},
		{
			name: "node of unknown org",
			mod:  func(g *federation.Genesis) { g.Nodes[0].Org = "acme" },
			want: `belongs to unknown org "acme"`,
		},
		{
			name: "duplicate node",
			mod: func(g *federation.Genesis) {
				n := g.Nodes[0]
				n.RaftAddress, n.APIAddress = "127.0.0.1:9001", "127.0.0.1:9002"
				g.Nodes = append(g.Nodes, n)
			},
			want: `node "ngo-1" listed twice`,
		},
		{
			name: "bad node address",
			mod:  func(g *federation.Genesis) { g.Nodes[0].APIAddress = "localhost" },
			want: `address "localhost"`,
		},
		{
			name: "address used twice",
			mod:  func(g *federation.Genesis) { g.Nodes[0].APIAddress = g.Nodes[0].RaftAddress },
			want: "used twice",
		},
		{
			name: "checkpoint key with wrong name",
			mod: func(g *federation.Genesis) {
				g.Nodes[0].CheckpointKey = checkpointVKey(t, federation.CheckpointKeyName("other.fed", "ngo-1"))
			},
			want: `checkpoint key is named "other.fed/ngo-1", want "hashfed.test/fed/ngo-1"`,
		},
		{
			name: "checkpoint key unparsable",
			mod:  func(g *federation.Genesis) { g.Nodes[0].CheckpointKey = "garbage" },
			want: `node "ngo-1": checkpoint key`,
		},
		{
			name: "voter whose org lacks operator",
			mod:  func(g *federation.Genesis) { g.Nodes = append(g.Nodes, iwfVoter) },
			want: `voting node "iwf-1" belongs to org "iwf", which lacks the operator role`,
		},
		{
			name: "no voters",
			mod:  func(g *federation.Genesis) { g.Nodes[0].Voter = false },
			want: "no voting nodes",
		},
		{
			name: "no nodes",
			mod:  func(g *federation.Genesis) { g.Nodes = nil },
			want: "no voting nodes",
		},
		{
			name: "bad set name",
			mod:  func(g *federation.Genesis) { g.Sets[0].Name = "csam" },
			want: `set name "csam"`,
		},
		{
			name: "duplicate set",
			mod:  func(g *federation.Genesis) { g.Sets = append(g.Sets, g.Sets[0]) },
			want: `set "ngo/csam" listed twice`,
		},
		{
			name: "set owned by unknown org",
			mod:  func(g *federation.Genesis) { g.Sets[0].Name = "acme/csam" },
			want: `owner org "acme" is not in the genesis`,
		},
		{
			name: "set owned by non-publisher",
			mod: func(g *federation.Genesis) {
				g.Sets = append(g.Sets, federation.Set{Name: "techco/list", Types: []federation.SignalType{federation.MD5}})
			},
			want: `set "techco/list": owner org "techco" lacks the publisher role`,
		},
		{
			name: "set without types",
			mod:  func(g *federation.Genesis) { g.Sets[1].Types = nil },
			want: `set "iwf/list" allows no signal types`,
		},
		{
			name: "set with unknown type",
			mod:  func(g *federation.Genesis) { g.Sets[1].Types = append(g.Sets[1].Types, "tlsh") },
			want: `unknown signal type "tlsh"`,
		},
		{
			name: "set with uppercase type",
			mod:  func(g *federation.Genesis) { g.Sets[1].Types = []federation.SignalType{"MD5"} },
			want: `unknown signal type "MD5"`,
		},
		{
			name: "unknown reader",
			mod:  func(g *federation.Genesis) { g.Sets[0].Readers = append(g.Sets[0].Readers, "nobody") },
			want: `set "ngo/csam": reader "nobody" is not in the genesis`,
		},
		{
			name: "unknown JSON field",
			raw: func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"version": 1,`), []byte(`"version": 1, "extra": true,`), 1)
			},
			want: `unknown field "extra"`,
		},
		{
			name: "unknown JSON field in org",
			raw: func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"name": "iwf",`), []byte(`"name": "iwf", "admin": true,`), 1)
			},
			want: `unknown field "admin"`,
		},
		{
			name: "trailing document",
			raw:  func(b []byte) []byte { return append(b, "{}"...) },
			want: "trailing data",
		},
		{
			name: "not JSON",
			raw:  func(b []byte) []byte { return []byte("version: 1\n") },
			want: "parsing genesis",
		},
		{
			name: "wrong JSON type",
			raw:  func(b []byte) []byte { return bytes.Replace(b, []byte(`"version": 1,`), []byte(`"version": "1",`), 1) },
			want: "parsing genesis",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, err := federation.ParseGenesis(doc)
			if err != nil {
				t.Fatal(err)
			}
			if tt.mod != nil {
				tt.mod(g)
			}
			b, err := g.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if tt.raw != nil {
				b = tt.raw(b)
			}
			_, err = federation.ParseGenesis(b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseGenesis = %v, want error containing %q", err, tt.want)
			}
			if _, err := federation.NewState(b); err == nil {
				t.Errorf("NewState accepted the broken genesis")
			}
		})
	}
}

// TestParseGenesisRejectsTrailingBracket: ParseGenesis checks for trailing
// data with json.Decoder.More, which reports false when the next token is a
// closing ']' or '}', so those trailing bytes are silently accepted.
func TestParseGenesisRejectsTrailingBracket(t *testing.T) {
	doc, _ := newTestGenesis(t)
	for _, tail := range []string{"]", "}", "\n]]]"} {
		if _, err := federation.ParseGenesis(append(doc[:len(doc):len(doc)], tail...)); err == nil {
			t.Errorf("ParseGenesis(doc + %q) = nil error, want trailing data rejected", tail)
		}
	}
}

func TestValidNames(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"ngo", true},
		{"a", true},
		{"0rg.x_y-z", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-ngo", false},
		{".ngo", false},
		{"Ngo", false},
		{"ngo/x", false},
		{"ngo x", false},
		{"ngo\n", false},
	} {
		if err := federation.ValidName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"ngo/csam", true},
		{"ngo/csam-industry.v2", true},
		{"ngo", false},
		{"ngo/", false},
		{"/csam", false},
		{"ngo/csam/x", false},
		{"NGO/csam", false},
	} {
		if err := federation.ValidSetName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidSetName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"example.org/federation", true},
		{"hashfed.test/fed", true},
		{"", false},
		{strings.Repeat("a", 201), false},
		{"a b", false},
		{"a+b", false},
		{"a\tb", false},
		{"fédération", false},
	} {
		if err := federation.ValidOrigin(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidOrigin(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestParseSetSpec(t *testing.T) {
	for _, tt := range []struct {
		spec    string
		want    federation.Set
		wantErr string
	}{
		{
			spec: "ngo/csam",
			want: federation.Set{Name: "ngo/csam", Types: federation.SignalTypes, Readers: []string{}},
		},
		{
			spec: "ngo/csam:types=md5,PDQ:readers=techco,iwf",
			want: federation.Set{Name: "ngo/csam", Types: []federation.SignalType{federation.MD5, federation.PDQ}, Readers: []string{"techco", "iwf"}},
		},
		{
			spec: "ngo/csam:readers=techco",
			want: federation.Set{Name: "ngo/csam", Types: federation.SignalTypes, Readers: []string{"techco"}},
		},
		{
			spec: "iwf/list:types=photodna",
			want: federation.Set{Name: "iwf/list", Types: []federation.SignalType{federation.PhotoDNA}, Readers: []string{}},
		},
		{
			spec: "ngo/csam:readers=",
			want: federation.Set{Name: "ngo/csam", Types: federation.SignalTypes, Readers: []string{}},
		},
		{spec: "csam", wantErr: "want <org>/<list>"},
		{spec: "NGO/csam", wantErr: `set name "NGO/csam"`},
		{spec: "", wantErr: "want <org>/<list>"},
		{spec: "ngo/csam:types=md5,tlsh", wantErr: `unknown signal type "tlsh"`},
		{spec: "ngo/csam:types=md5,", wantErr: `unknown signal type ""`},
		{spec: "ngo/csam:colour=red", wantErr: `unknown key "colour"`},
		{spec: "ngo/csam:types", wantErr: `"types" is not key=value`},
	} {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := federation.ParseSetSpec(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSetSpec(%q) = %+v, %v; want error containing %q", tt.spec, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSetSpec(%q): %v", tt.spec, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseSetSpec(%q) mismatch (-want +got):\n%s", tt.spec, diff)
			}
		})
	}
}

func TestParseSetSpecDoesNotAliasSignalTypes(t *testing.T) {
	s, err := federation.ParseSetSpec("ngo/csam")
	if err != nil {
		t.Fatal(err)
	}
	before := federation.SignalTypes[0]
	s.Types[0] = "changed"
	if federation.SignalTypes[0] != before {
		federation.SignalTypes[0] = before
		t.Fatal("modifying a parsed set's types changed federation.SignalTypes")
	}
}

// founderFiles splits a genesis into per-org founder files, as each founding
// org would write them.
func founderFiles(t *testing.T, g *federation.Genesis) [][]byte {
	t.Helper()
	var files [][]byte
	for _, o := range g.Orgs {
		f := federation.Founder{Org: o}
		for _, n := range g.Nodes {
			if n.Org == o.Name {
				f.Nodes = append(f.Nodes, n)
			}
		}
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	return files
}

func TestAssemble(t *testing.T) {
	doc, _ := newTestGenesis(t)
	want, err := federation.ParseGenesis(doc)
	if err != nil {
		t.Fatal(err)
	}
	var founders []*federation.Founder
	for _, b := range founderFiles(t, want) {
		f, err := federation.ParseFounder(b)
		if err != nil {
			t.Fatalf("ParseFounder: %v\n%s", err, b)
		}
		founders = append(founders, f)
	}
	var sets []federation.Set
	for _, spec := range []string{"ngo/csam:readers=techco", "iwf/list:types=md5,pdq"} {
		s, err := federation.ParseSetSpec(spec)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, s)
	}
	got, err := federation.Assemble(testFed, founders, sets)
	if err != nil {
		t.Fatalf("Assemble: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Assemble mismatch (-want +got):\n%s", diff)
	}
	b, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := federation.NewState(b); err != nil {
		t.Errorf("NewState(assembled genesis): %v", err)
	}

	// Without sets the document still says "sets": [], not null.
	got, err = federation.Assemble(testFed, founders, nil)
	if err != nil {
		t.Fatalf("Assemble without sets: %v", err)
	}
	b, err = got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"sets": []`)) {
		t.Errorf("assembled genesis without sets:\n%s\nwant \"sets\": []", b)
	}

	// Founders in another order give another document.
	swapped := []*federation.Founder{founders[1], founders[0], founders[2]}
	got, err = federation.Assemble(testFed, swapped, sets)
	if err != nil {
		t.Fatal(err)
	}
	if got.Orgs[0].Name != "iwf" || got.Orgs[1].Name != "ngo" {
		t.Errorf("Assemble reordered the founders: %q, %q", got.Orgs[0].Name, got.Orgs[1].Name)
	}
}

func TestAssembleRejects(t *testing.T) {
	doc, _ := newTestGenesis(t)
	g, err := federation.ParseGenesis(doc)
	if err != nil {
		t.Fatal(err)
	}
	ngo := &federation.Founder{Org: *g.Org("ngo"), Nodes: g.Nodes}
	iwf := &federation.Founder{Org: *g.Org("iwf")}
	for _, tt := range []struct {
		name     string
		fed      string
		founders []*federation.Founder
		sets     []federation.Set
		want     string
	}{
		{"no founders", testFed, nil, nil, "no orgs"},
		{"no voters", testFed, []*federation.Founder{iwf}, nil, "no voting nodes"},
		{"same founder twice", testFed, []*federation.Founder{ngo, ngo}, nil, "listed twice"},
		{"checkpoint key of another federation", "other.fed", []*federation.Founder{ngo}, nil, "checkpoint key is named"},
		{"set of a missing org", testFed, []*federation.Founder{ngo}, []federation.Set{{Name: "iwf/list", Types: []federation.SignalType{federation.MD5}}}, `owner org "iwf" is not in the genesis`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := federation.Assemble(tt.fed, tt.founders, tt.sets)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Assemble = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestParseFounderRejects(t *testing.T) {
	doc, _ := newTestGenesis(t)
	g, err := federation.ParseGenesis(doc)
	if err != nil {
		t.Fatal(err)
	}
	good := founderFiles(t, g)[0] // ngo
	for _, tt := range []struct {
		name string
		b    []byte
		want string
	}{
		{"node of another org", bytes.Replace(good, []byte(`"org": "ngo"`), []byte(`"org": "iwf"`), 1), `lists node "ngo-1" of org "iwf"`},
		{"unknown field", bytes.Replace(good, []byte(`"nodes":`), []byte(`"extra": 1, "nodes":`), 1), `unknown field "extra"`},
		{"not JSON", []byte("ngo"), "parsing founder file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := federation.ParseFounder(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseFounder = %v, want error containing %q\n%s", err, tt.want, tt.b)
			}
		})
	}
}

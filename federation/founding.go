package federation

import (
	"fmt"
	"slices"
	"strings"
)

// A Founder is one org's contribution to a genesis document: the org and its
// founding nodes. Each founding org writes its own (hashfed genesis org) and
// one of them assembles the genesis from all of them (hashfed genesis assemble).
type Founder struct {
	Org   Org    `json:"org"`
	Nodes []Node `json:"nodes"`
}

// ParseFounder decodes a founder file. Unknown fields are an error.
func ParseFounder(b []byte) (*Founder, error) {
	var f Founder
	if err := decodeStrict(b, &f); err != nil {
		return nil, fmt.Errorf("parsing founder file: %w", err)
	}
	for _, n := range f.Nodes {
		if n.Org != f.Org.Name {
			return nil, fmt.Errorf("founder file of org %q lists node %q of org %q", f.Org.Name, n.ID, n.Org)
		}
	}
	return &f, nil
}

// Assemble builds and validates a genesis from founders (in the order given) and sets.
func Assemble(federation string, founders []*Founder, sets []Set) (*Genesis, error) {
	g := &Genesis{Version: GenesisVersion, Federation: federation, Sets: sets}
	for _, f := range founders {
		g.Orgs = append(g.Orgs, f.Org)
		g.Nodes = append(g.Nodes, f.Nodes...)
	}
	if g.Sets == nil {
		g.Sets = []Set{}
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return g, nil
}

// ParseSetSpec parses a set as given on the command line:
// "<org>/<list>:types=md5,pdq:readers=techco,other" (readers optional).
func ParseSetSpec(spec string) (Set, error) {
	parts := strings.Split(spec, ":")
	s := Set{Name: parts[0], Readers: []string{}}
	if err := ValidSetName(s.Name); err != nil {
		return Set{}, err
	}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return Set{}, fmt.Errorf("set %q: %q is not key=value", spec, p)
		}
		var items []string
		if v != "" {
			items = strings.Split(v, ",")
		}
		switch k {
		case "types":
			for _, it := range items {
				t, err := ParseSignalType(it)
				if err != nil {
					return Set{}, fmt.Errorf("set %q: %w", spec, err)
				}
				s.Types = append(s.Types, t)
			}
		case "readers":
			s.Readers = append(s.Readers, items...)
		default:
			return Set{}, fmt.Errorf("set %q: unknown key %q (want types or readers)", spec, k)
		}
	}
	if len(s.Types) == 0 {
		s.Types = slices.Clone(SignalTypes)
	}
	return s, nil
}

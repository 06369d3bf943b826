package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestIdentityRoundTrip(t *testing.T) {
	for _, id := range []Identity{
		{Org: "ncmec", Kind: KindNode, Name: "n1"},
		{Org: "iwf.org.uk", Kind: KindClient, Name: "alice"},
		{Org: "my_org", Kind: KindNode, Name: "a-b_c.d"},
		{Org: "0", Kind: KindClient, Name: "9"},
		{Org: strings.Repeat("o", 63), Kind: KindNode, Name: strings.Repeat("n", 63)},
	} {
		s := id.String()
		if got := id.URI().String(); got != s {
			t.Errorf("%#v: URI().String() = %q, String() = %q", id, got, s)
		}
		got, err := ParseIdentity(s)
		if err != nil {
			t.Errorf("ParseIdentity(%q): %v", s, err)
			continue
		}
		if got != id {
			t.Errorf("ParseIdentity(%q) = %#v, want %#v", s, got, id)
		}
	}
}

func TestParseIdentityErrors(t *testing.T) {
	for _, tt := range []struct {
		uri  string
		want string // in the error message
	}{
		{"", "must start with"},
		{"https://ncmec/node/n1", "must start with"},
		{"SPIFFE://ncmec/node/n1", "must start with"},
		{"spiffe:/ncmec/node/n1", "must start with"},
		{"spiffe://ncmec/node", "want the form"},
		{"spiffe://ncmec/node/n1/", "want the form"},
		{"spiffe://ncmec/node/n1/x", "want the form"},
		{"spiffe://ncmec//node/n1", "want the form"},
		{"spiffe:///node/n1", "org: invalid name \"\""},
		{"spiffe://Ncmec/node/n1", "character 'N'"},
		{"spiffe://ncmec:443/node/n1", "character ':'"},
		{"spiffe://user@ncmec/node/n1", "character '@'"},
		{"spiffe://-ncmec/node/n1", "must start with a lowercase letter or a digit"},
		{"spiffe://a..b/node/n1", "empty dot-separated labels"},
		{"spiffe://ncmec./node/n1", "empty dot-separated labels"},
		{"spiffe://10.0.0.1/node/n1", "must not be IP addresses"},
		{"spiffe://ncmec/server/n1", `kind "server"`},
		{"spiffe://ncmec/Node/n1", `kind "Node"`},
		{"spiffe://ncmec/node/", "name: invalid name \"\""},
		{"spiffe://ncmec/node/N1", "character 'N'"},
		{"spiffe://ncmec/node/n%31", "character '%'"},
		{"spiffe://ncmec/node/n1?x=1", "character '?'"},
		{"spiffe://ncmec/node/n1#f", "character '#'"},
		{"spiffe://ncmec/node/.n1", "must start with"},
		{"spiffe://ncmec/node/n\u00e9", `character 'é'`},
		{"spiffe://ncmec/node/" + strings.Repeat("n", 64), "64 characters long"},
		{"spiffe://" + strings.Repeat("o", 64) + "/node/n1", "64 characters long"},
	} {
		_, err := ParseIdentity(tt.uri)
		if err == nil {
			t.Errorf("ParseIdentity(%q) succeeded, want error", tt.uri)
			continue
		}
		if !errors.Is(err, ErrBadIdentity) {
			t.Errorf("ParseIdentity(%q) = %v, want error wrapping ErrBadIdentity", tt.uri, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseIdentity(%q) = %v, want error containing %q", tt.uri, err, tt.want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ok     bool
		orgBad bool // valid name but not a valid org
	}{
		{"a", true, false},
		{"0", true, false},
		{"n1", true, false},
		{"a-b_c.d", true, false},
		{strings.Repeat("x", 63), true, false},
		{"a..b", true, true},
		{"a.", true, true},
		{"192.168.0.1", true, true},
		{"123", true, false},
		{"", false, true},
		{strings.Repeat("x", 64), false, true},
		{"A", false, true},
		{"-a", false, true},
		{"_a", false, true},
		{".a", false, true},
		{"a b", false, true},
		{"a/b", false, true},
		{"a:b", false, true},
		{"a\x00", false, true},
		{"\xff", false, true},
	} {
		err := ValidName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadName) {
			t.Errorf("ValidName(%q) = %v, want error wrapping ErrBadName", tt.name, err)
		}
		err = ValidOrg(tt.name)
		if wantOK := tt.ok && !tt.orgBad; (err == nil) != wantOK {
			t.Errorf("ValidOrg(%q) = %v, want ok %v", tt.name, err, wantOK)
		}
		if err != nil && !errors.Is(err, ErrBadName) {
			t.Errorf("ValidOrg(%q) = %v, want error wrapping ErrBadName", tt.name, err)
		}
	}
}

func TestIdentityFromCert(t *testing.T) {
	uri := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	for _, tt := range []struct {
		name string
		uris []*url.URL
		want Identity
		err  string
	}{
		{"one", []*url.URL{uri("spiffe://a/node/n1")}, Identity{"a", KindNode, "n1"}, ""},
		{"none", nil, Identity{}, "0 URI SANs"},
		{"two", []*url.URL{uri("spiffe://a/node/n1"), uri("spiffe://b/node/n1")}, Identity{}, "2 URI SANs"},
		{"bad", []*url.URL{uri("spiffe://a/node/n1/extra")}, Identity{}, "want the form"},
		{"escaped", []*url.URL{uri("spiffe://a/node/n%31")}, Identity{}, "character '%'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := IdentityFromCert(&x509.Certificate{URIs: tt.uris})
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Fatalf("IdentityFromCert = %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrBadIdentity) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("IdentityFromCert = %v, %v; want error wrapping ErrBadIdentity containing %q", got, err, tt.err)
			}
		})
	}
	if _, err := IdentityFromCert(nil); !errors.Is(err, ErrBadIdentity) {
		t.Errorf("IdentityFromCert(nil) = %v, want ErrBadIdentity", err)
	}
}

func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{
		"spiffe://ncmec/node/n1",
		"spiffe://iwf.org.uk/client/alice",
		"spiffe://a..b/node/n",
		"spiffe://1.2.3.4/node/n",
		"spiffe://a/node/n%31",
		"spiffe://a:1/node/n",
		"spiffe://a/node/n/",
		"spiffe://a/Node/n",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity(s)
		if err != nil {
			if !errors.Is(err, ErrBadIdentity) {
				t.Fatalf("ParseIdentity(%q) = %v, want error wrapping ErrBadIdentity", s, err)
			}
			return
		}
		if got := id.String(); got != s {
			t.Fatalf("ParseIdentity(%q).String() = %q", s, got)
		}
		// The URL form, which is what certificates carry, must parse back
		// to the same identity, as it does when read from a certificate.
		u, err := url.Parse(id.URI().String())
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", id.URI(), err)
		}
		if got, err := ParseIdentity(u.String()); err != nil || got != id {
			t.Fatalf("ParseIdentity(%q) = %v, %v; want %v", u, got, err, id)
		}
	})
}

func ExampleParseIdentity() {
	id, err := ParseIdentity("spiffe://ncmec/node/n1")
	if err != nil {
		panic(err)
	}
	fmt.Println(id.Org, id.Kind, id.Name)
	fmt.Println(Identity{Org: "iwf", Kind: KindClient, Name: "alice"})

	_, err = ParseIdentity("spiffe://NCMEC/node/n1")
	fmt.Println(err)
	// Output:
	// ncmec node n1
	// spiffe://iwf/client/alice
	// invalid identity "spiffe://NCMEC/node/n1": org: invalid name "NCMEC": character 'N' at offset 0 is not allowed (use lowercase letters, digits, '-', '_', '.')
}

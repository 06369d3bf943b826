package federation_test

import (
	"encoding/json"
	"fmt"

	"github.com/hashfed/hashfed/federation"
)

// The JSON encoding of a statement is the DSSE payload publishers sign and
// auditors verify; its field names and order are part of the wire format.
func ExampleStatement() {
	st := federation.Statement{
		Federation:    "example.org/federation",
		Org:           "ngo",
		Set:           "ngo/csam",
		Sequence:      7,
		Op:            federation.OpAdd,
		Count:         2,
		Types:         []string{"md5", "pdq"},
		Labels:        []string{"A1"},
		PayloadSHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		IssuedAt:      "2025-01-02T03:04:05Z",
	}
	b, err := json.Marshal(st)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))

	// IssuedAt is informative and left out when empty.
	st.IssuedAt = ""
	b, err = json.Marshal(st)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
	// Output:
	// {"federation":"example.org/federation","org":"ngo","set":"ngo/csam","sequence":7,"op":"add","count":2,"types":["md5","pdq"],"labels":["A1"],"payload_sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","issued_at":"2025-01-02T03:04:05Z"}
	// {"federation":"example.org/federation","org":"ngo","set":"ngo/csam","sequence":7,"op":"add","count":2,"types":["md5","pdq"],"labels":["A1"],"payload_sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
}

// A rejection's code tells a caller what to do about it.
func ExampleCodeOf() {
	r := &federation.Result{Code: federation.CodeFailedPrecondition, Msg: "sequence 3 skips ahead: the next must be 2"}
	err := r.Err()
	fmt.Println(federation.CodeOf(err), "-", err)
	fmt.Println(federation.CodeOf(fmt.Errorf("publishing: %w", err)))
	fmt.Println(federation.CodeOf(nil), federation.Code(42))
	// Output:
	// failed precondition - sequence 3 skips ahead: the next must be 2
	// failed precondition
	// code(0) code(42)
}

// ExampleProposeAct pins the governance act encoding: the JSON payload of an
// unsigned DSSE envelope, which each approving operator org signs.
func ExampleProposeAct() {
	env, err := federation.ProposeAct(&federation.Act{
		Federation: "example.hashfed",
		Sequence:   7,
		Kind:       federation.ActSetReaders,
		Name:       "ngo/csam",
		Readers:    []string{"techco"},
		Reason:     "techco joined",
	})
	if err != nil {
		panic(err)
	}
	a, err := federation.PeekAct(env)
	if err != nil {
		panic(err)
	}
	body, _ := json.Marshal(a)
	fmt.Printf("%s\n", body)
	// Output:
	// {"federation":"example.hashfed","sequence":7,"kind":"set-readers","name":"ngo/csam","readers":["techco"],"reason":"techco joined"}
}

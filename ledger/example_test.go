package ledger_test

import (
	"bytes"
	"fmt"

	"github.com/hashfed/hashfed/ledger"
	"golang.org/x/mod/sumdb/note"
)

func ExampleCheckpoint_Marshal() {
	tree, err := ledger.NewTree(ledger.NewMemStore())
	if err != nil {
		panic(err)
	}
	for _, leaf := range []string{"a", "b", "c"} {
		if _, err := tree.Append([]byte(leaf)); err != nil {
			panic(err)
		}
	}
	root, err := tree.Root()
	if err != nil {
		panic(err)
	}
	c := ledger.Checkpoint{Origin: "example.org/federation", Size: tree.Size(), Hash: root}
	fmt.Printf("%s", c.Marshal())
	// Output:
	// example.org/federation
	// 3
	// NmQuc8JUCrEh46a/lUWwokmCzYMOsT080Z3jzmwCHsE=
}

func ExampleParseCheckpoint() {
	body := "example.org/federation\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
	c, err := ledger.ParseCheckpoint([]byte(body))
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Origin, c.Size, c.Hash)
	_, err = ledger.ParseCheckpoint([]byte("example.org/federation\n00\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	fmt.Println(err)
	// Output:
	// example.org/federation 0 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
	// ledger: malformed checkpoint: size "00" is not a decimal number without leading zeros
}

func ExampleSignCheckpoint() {
	skey, vkey, err := ledger.GenerateKey("example.org/federation")
	if err != nil {
		panic(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		panic(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		panic(err)
	}

	tree, err := ledger.NewTree(ledger.NewMemStore())
	if err != nil {
		panic(err)
	}
	if _, err := tree.Append([]byte("hello")); err != nil {
		panic(err)
	}
	root, err := tree.Root()
	if err != nil {
		panic(err)
	}
	signed, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "example.org/federation", Size: tree.Size(), Hash: root}, signer)
	if err != nil {
		panic(err)
	}
	// The signed note is the body, a blank line, and one line per signature.
	body, sigs, _ := bytes.Cut(signed, []byte("\n\n"))
	fmt.Printf("%s\n\n", body)
	fmt.Println(bytes.HasPrefix(sigs, []byte("— example.org/federation ")))

	c, n, err := ledger.OpenCheckpoint(signed, "example.org/federation", note.VerifierList(verifier))
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Size, c.Hash == root, len(n.Sigs))
	// Output:
	// example.org/federation
	// 1
	// iipcm3aIJ95alVLDigRMZpWcaPbS8htSYK9U0vh9uCc=
	//
	// true
	// 1 true 1
}

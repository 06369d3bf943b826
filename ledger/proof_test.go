package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestProofRoundTripAndVerify(t *testing.T) {
	leaves := testLeaves(37)
	tree, _ := newTestTree(t, leaves)
	skey, vkey, err := GenerateKey("example.org/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	root, _ := tree.Root()
	cp := Checkpoint{Origin: "example.org/log", Size: tree.Size(), Hash: root}
	signed, err := SignCheckpoint(cp, signer)
	if err != nil {
		t.Fatal(err)
	}
	for _, idx := range []int64{0, 1, 17, 36} {
		hashes, err := tree.InclusionProof(idx, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		for _, extra := range [][]byte{nil, leaves[idx]} {
			p := &Proof{Extra: extra, Index: idx, Hashes: hashes, Checkpoint: signed}
			b := p.Marshal()
			got, err := ParseProof(b)
			if err != nil {
				t.Fatalf("index %d: %v\n%s", idx, err, b)
			}
			if !bytes.Equal(got.Marshal(), b) {
				t.Fatalf("index %d: re-marshal differs", idx)
			}
			opened, _, err := OpenCheckpoint(got.Checkpoint, cp.Origin, note.VerifierList(verifier))
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Verify(leaves[idx], opened); err != nil {
				t.Errorf("index %d: %v", idx, err)
			}
			if err := got.Verify(leaves[(idx+1)%37], opened); !errors.Is(err, ErrInvalidProof) {
				t.Errorf("index %d: another leaf verified (err %v)", idx, err)
			}
		}
	}
}

func TestParseProofMalformed(t *testing.T) {
	h := "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ="
	cp := "o\n1\n" + h + "\n\n— o sig\n"
	for _, in := range []string{
		"",
		"c2sp.org/tlog-proof@v2\nindex 1\n\n" + cp,
		ProofHeader + "\n\n" + cp,
		ProofHeader + "\nindex -1\n\n" + cp,
		ProofHeader + "\nindex 01\n\n" + cp,
		ProofHeader + "\nindex x\n\n" + cp,
		ProofHeader + "\nextra !!\nindex 1\n\n" + cp,
		ProofHeader + "\nindex 1\nnot-base64\n\n" + cp,
		ProofHeader + "\nindex 1\nAAAA\n\n" + cp,
		ProofHeader + "\nindex 1\n" + h,
		ProofHeader + "\nindex 1\n\n",
	} {
		if _, err := ParseProof([]byte(in)); !errors.Is(err, ErrMalformedProof) {
			t.Errorf("ParseProof(%q) = %v, want ErrMalformedProof", in, err)
		}
	}
}

func FuzzParseProof(f *testing.F) {
	f.Add([]byte(ProofHeader + "\nextra AQID\nindex 3\ngSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n\no\n4\ngSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n\n— o x\n"))
	f.Add([]byte(ProofHeader + "\nindex 0\n\ncp\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProof(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("parse then marshal changed the bytes:\n%q\n%q", b, p.Marshal())
		}
	})
}

func ExampleProof_Marshal() {
	p := &Proof{Extra: []byte("leaf"), Index: 5, Checkpoint: []byte("example.org/log\n6\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— example.org/log AAAA\n")}
	fmt.Printf("%s", p.Marshal())
	// Output:
	// c2sp.org/tlog-proof@v1
	// extra bGVhZg==
	// index 5
	//
	// example.org/log
	// 6
	// 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
	//
	// — example.org/log AAAA
}

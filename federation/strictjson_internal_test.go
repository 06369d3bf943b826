package federation

import (
	"bytes"

	"github.com/sigstore/sigstore/pkg/signature/dsse"
)

// SignStatementBody signs body, as given, as a statement of s's org: tests
// use it to sign statements in encodings hashfed never produces.
func SignStatementBody(s *Signer, body []byte) ([]byte, error) {
	return dsse.WrapSigner(s.s, StatementPayloadType).SignMessage(bytes.NewReader(body))
}

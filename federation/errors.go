package federation

import (
	"errors"
	"fmt"
)

// A Code classifies why a request was rejected. The node maps codes to gRPC
// status codes; the state machine records them in apply results.
type Code int

// The rejection codes.
const (
	CodeInvalid            Code = 1 // malformed or wrongly signed input
	CodePermissionDenied   Code = 2 // the org may not do this
	CodeNotFound           Code = 3 // no such set or org
	CodeAlreadyExists      Code = 4 // replay: the sequence number was already used
	CodeFailedPrecondition Code = 5 // out of order: the sequence number skips ahead
	CodeUnavailable        Code = 6 // the federation is not ready (no genesis entry yet)
	CodeInternal           Code = 7 // the node could not read its own state
)

var codeNames = map[Code]string{
	CodeInvalid:            "invalid",
	CodePermissionDenied:   "permission denied",
	CodeNotFound:           "not found",
	CodeAlreadyExists:      "already exists",
	CodeFailedPrecondition: "failed precondition",
	CodeUnavailable:        "unavailable",
	CodeInternal:           "internal",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code(%d)", int(c))
}

// A RejectError is a request the federation's rules refuse. It carries a
// message meant for the person who sent the request.
type RejectError struct {
	Code Code
	Msg  string
	// Committed is set on an AlreadyExists rejection of a resend: the
	// contribution, signed again or not, is already on the ledger at this
	// entry index (a contribution is never at entry 0, the genesis).
	Committed int64
}

func (e *RejectError) Error() string { return e.Msg }

// A node answers a resend of a committed contribution with an AlreadyExists
// status carrying a google.rpc.ErrorInfo of domain [ErrorDomain] and reason
// [ReasonCommitted], whose metadata "index" is the entry index (decimal).
const (
	ErrorDomain     = "hashfed"
	ReasonCommitted = "CONTRIBUTION_ALREADY_COMMITTED"
)

func reject(code Code, format string, args ...any) *RejectError {
	return &RejectError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of a [RejectError] in err's chain, or 0.
func CodeOf(err error) Code {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

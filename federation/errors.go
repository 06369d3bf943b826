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
}

func (e *RejectError) Error() string { return e.Msg }

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

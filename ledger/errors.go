package ledger

import "errors"

var (
	// ErrIndexOutOfRange is returned, wrapped, when a leaf index, tree size or
	// range lies outside the tree (or store) it is applied to.
	ErrIndexOutOfRange = errors.New("ledger: index out of range")

	// ErrLeafTooLarge is returned, wrapped, for a leaf longer than
	// [MaxLeafSize] bytes.
	ErrLeafTooLarge = errors.New("ledger: leaf too large")

	// ErrInvalidProof is returned, wrapped, when an inclusion or consistency
	// proof does not prove what it is claimed to prove.
	ErrInvalidProof = errors.New("ledger: invalid proof")

	// ErrMalformedCheckpoint is returned, wrapped, for a checkpoint body that
	// is not a well-formed C2SP tlog-checkpoint, or a [Checkpoint] that
	// cannot be encoded as one.
	ErrMalformedCheckpoint = errors.New("ledger: malformed checkpoint")

	// ErrWrongOrigin is returned, wrapped, by [OpenCheckpoint] for a validly
	// signed checkpoint of some other log.
	ErrWrongOrigin = errors.New("ledger: checkpoint has wrong origin")
)

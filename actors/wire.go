package actors

// Errors on the wire. A request to a grain or a node actor may cross
// members, so its answer carries an actorpb.Error: a code the caller acts
// on, and the text. errorToWire and errorFromWire keep the sentinel errors
// of this package and of persistence usable with errors.Is on either side.

import (
	"errors"

	"github.com/xmtpbridge/bridge/actors/actorpb"
	"github.com/xmtpbridge/bridge/cluster"
	"github.com/xmtpbridge/bridge/persistence"
)

// ErrOutcomeUnknown reports a request that got no answer in time and may
// or may not have run, so it is not sent again.
var ErrOutcomeUnknown = errors.New("no answer in time, the request may have run")

// ErrUnknownNode reports a node id that no member of the cluster has: it
// is cluster.ErrUnknownNode.
var ErrUnknownNode = cluster.ErrUnknownNode

var wireErrors = []struct {
	code actorpb.ErrorCode
	err  error
}{
	{actorpb.ErrorCode_ERROR_CODE_NOT_ACTIVE, ErrNotActive},
	{actorpb.ErrorCode_ERROR_CODE_DISABLED, ErrDisabled},
	{actorpb.ErrorCode_ERROR_CODE_STOPPED, ErrStopped},
	{actorpb.ErrorCode_ERROR_CODE_PEER_NOT_ON_NETWORK, ErrPeerNotOnNetwork},
	{actorpb.ErrorCode_ERROR_CODE_LEASE_HELD, persistence.ErrLeaseHeld},
	{actorpb.ErrorCode_ERROR_CODE_NOT_FOUND, persistence.ErrNotFound},
}

// errorToWire encodes err; nil stays nil.
func errorToWire(err error) *actorpb.Error {
	if err == nil {
		return nil
	}
	for _, w := range wireErrors {
		if errors.Is(err, w.err) {
			return &actorpb.Error{Code: w.code, Message: err.Error()}
		}
	}
	return &actorpb.Error{Code: actorpb.ErrorCode_ERROR_CODE_OTHER, Message: err.Error()}
}

// wireError is an error that came over the wire: its text, and the
// sentinel its code names.
type wireError struct {
	msg      string
	sentinel error
}

func (e *wireError) Error() string { return e.msg }
func (e *wireError) Unwrap() error { return e.sentinel }

// errorFromWire decodes an error; nil and ERROR_CODE_NONE are nil.
func errorFromWire(e *actorpb.Error) error {
	if e == nil || e.Code == actorpb.ErrorCode_ERROR_CODE_NONE {
		return nil
	}
	msg := e.Message
	if msg == "" {
		msg = e.Code.String()
	}
	for _, w := range wireErrors {
		if w.code == e.Code {
			return &wireError{msg: msg, sentinel: w.err}
		}
	}
	return &wireError{msg: msg}
}

// retryable reports whether a request that failed with err never ran and
// may be sent again, for example to the next activation of the identity
// after a rehome.
func retryable(err error) bool {
	return errors.Is(err, ErrNotActive) || errors.Is(err, persistence.ErrLeaseHeld) || errors.Is(err, ErrStopped)
}

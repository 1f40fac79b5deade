package config

import (
	"errors"
	"strings"
)

// ErrInvalid is matched (with errors.Is) by every configuration error that
// Load returns.
var ErrInvalid = errors.New("invalid configuration")

// Problem is one thing wrong with one variable.
type Problem struct {
	// Var is the variable's name.
	Var string
	// Message says what is wrong; it never contains a secret value.
	Message string
	// Example is a valid value of the variable, when one is documented.
	Example string
}

// Error returns "VAR: message (example: value)".
func (p *Problem) Error() string {
	if p.Example == "" {
		return p.Var + ": " + p.Message
	}
	return p.Var + ": " + p.Message + " (example: " + p.Example + ")"
}

// Is makes every Problem match ErrInvalid.
func (p *Problem) Is(target error) bool { return target == ErrInvalid }

// ValidationError carries every problem found by one Load.
type ValidationError struct {
	Problems []*Problem
}

// Error lists the problems, one a line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, so errors.As finds each *Problem.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// Is makes a ValidationError match ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Vars returns the names of the variables with problems, in order.
func (e *ValidationError) Vars() []string {
	names := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		names[i] = p.Var
	}
	return names
}

package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/gofiber/fiber/v2"
)

// decodeBody strictly decodes the request body into v.
func decodeBody(c *fiber.Ctx, v any) error {
	if err := decodeStrict(c.Body(), v); err != nil {
		return err
	}
	return nil
}

// decodeStrict decodes one JSON object from body into v. Malformed JSON,
// values of the wrong type, unknown fields (keys that are not exactly a
// field's name: matching is case-sensitive, unlike encoding/json's), a body
// that is not an object and trailing data are all errors with a message
// that says what is wrong.
func decodeStrict(body []byte, v any) *Error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return errorf(fiber.StatusBadRequest, CodeInvalidJSON, "request body is empty: send a JSON object")
	}
	if trimmed[0] != '{' {
		return errorf(fiber.StatusBadRequest, CodeInvalidJSON, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(fiber.StatusBadRequest, CodeInvalidJSON, "request body has data after the JSON object")
	}
	// The body is well-formed and of the right types; now every key must
	// be exactly a field's name. encoding/json's DisallowUnknownFields
	// would let "replymode" through as replyMode.
	return checkFields(trimmed, v)
}

func jsonError(err error) *Error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntaxErr):
		return errorf(fiber.StatusBadRequest, CodeInvalidJSON, "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errorf(fiber.StatusBadRequest, CodeInvalidJSON, "malformed JSON: the body ends early")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return errorf(fiber.StatusBadRequest, CodeWrongType, "request body must be a JSON object")
		}
		return errorf(fiber.StatusBadRequest, CodeWrongType, "field %q must be %s, got %s", field, jsonTypeName(typeErr.Type), typeErr.Value)
	}
	return errorf(fiber.StatusBadRequest, CodeInvalidJSON, "malformed JSON")
}

// jsonTypeName names the JSON type a Go type decodes from.
func jsonTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return fmt.Sprintf("a %s", t.Kind())
}

package http

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
)

// encoding/json matches object keys to struct fields without regard to
// case, so {"forward":{"replymode":"reply"}} would set replyMode although
// the OpenAPI document allows no such property. unknownField walks the body
// against the request type and names the first key that is not exactly a
// field's JSON name, with its path (forward.replymode).

// fieldSet maps the exact JSON names of a struct's fields to their types.
type fieldSet map[string]reflect.Type

var fieldSets sync.Map // reflect.Type -> fieldSet

func fieldsOf(t reflect.Type) fieldSet {
	if fs, ok := fieldSets.Load(t); ok {
		return fs.(fieldSet)
	}
	fs := fieldSet{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		fs[name] = f.Type
	}
	fieldSets.Store(t, fs)
	return fs
}

// checkFields reports the first key of body that no field of v's type has
// exactly, as an unknown_field refusal. Malformed JSON is not its concern:
// it returns nil, and the decoder reports it.
func checkFields(body []byte, v any) *Error {
	dec := json.NewDecoder(bytes.NewReader(body))
	path, found, err := unknownField(dec, reflect.TypeOf(v), "")
	if err != nil || !found {
		return nil
	}
	return errorf(fiber.StatusBadRequest, CodeUnknownField, "unknown field %q", path)
}

// unknownField reads one value from dec as the type t and returns the path
// of its first unknown key and true, or false when it has none. Only structs are checked; maps take any
// key, and the values of every other type are skipped. The recursion
// follows the Go type, so its depth is that of the request types, whatever
// the nesting of the body.
func unknownField(dec *json.Decoder, t reflect.Type, path string) (string, bool, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		return unknownInObject(dec, path, func(key string) (reflect.Type, bool) {
			ft, ok := fieldsOf(t)[key]
			return ft, ok
		})
	case reflect.Map:
		return unknownInObject(dec, path, func(string) (reflect.Type, bool) { return t.Elem(), true })
	case reflect.Slice, reflect.Array:
		tok, err := dec.Token()
		if err != nil {
			return "", false, err
		}
		if tok != json.Delim('[') {
			return "", false, skipRest(dec, tok)
		}
		for i := 0; dec.More(); i++ {
			p, found, err := unknownField(dec, t.Elem(), path+"["+strconv.Itoa(i)+"]")
			if err != nil || found {
				return p, found, err
			}
		}
		_, err = dec.Token()
		return "", false, err
	}
	return "", false, skipValue(dec)
}

func unknownInObject(dec *json.Decoder, path string, field func(string) (reflect.Type, bool)) (string, bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", false, err
	}
	if tok != json.Delim('{') {
		// Not an object (null, or a value the decoder refuses).
		return "", false, skipRest(dec, tok)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false, err
		}
		key, _ := tok.(string)
		p := key
		if path != "" {
			p = path + "." + key
		}
		ft, ok := field(key)
		if !ok {
			return p, true, nil
		}
		if q, found, err := unknownField(dec, ft, p); err != nil || found {
			return q, found, err
		}
	}
	_, err = dec.Token()
	return "", false, err
}

// skipValue reads one whole value from dec, however deeply nested, without
// recursion.
func skipValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	return skipRest(dec, tok)
}

// skipRest reads the rest of the value whose first token was first.
func skipRest(dec *json.Decoder, first json.Token) error {
	depth := 0
	for tok := first; ; {
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
		var err error
		if tok, err = dec.Token(); err != nil {
			return err
		}
	}
}

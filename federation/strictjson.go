package federation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"
)

// One reading of every signed byte.
//
// Go's encoding/json keeps the last of duplicate keys, matches keys to fields
// case-insensitively, replaces invalid UTF-8 and lone surrogate escapes with
// U+FFFD, and ignores what follows the first value when it is asked to. Other
// JSON parsers choose differently, so a verifier in another language could
// read a statement or act differently from the nodes. hashfed therefore
// accepts:
//
//   - for signed payloads (statements, governance acts) only their canonical
//     encoding: the bytes Go's json.Marshal produces for the decoded value
//     (fields in declaration order, no insignificant white space, empty
//     optional fields left out, '<', '>' and '&' escaped as \u003c, \u003e,
//     \u0026). Anything else, even an equivalent rewrite, is refused; see
//     [decodeCanonical];
//   - for unsigned JSON that is hashed or carries signed bytes (DSSE
//     envelopes, genesis and founder documents) one value whose object keys
//     are unique and spelled exactly as the fields they fill, with nothing
//     after it, in valid UTF-8; see [decodeStrict].

// ErrAmbiguousJSON is wrapped by errors for JSON that a second parser could
// read differently.
var ErrAmbiguousJSON = errors.New("ambiguous JSON")

// decodeCanonical decodes b into v (a pointer to a struct) and requires b to
// be exactly the canonical encoding of the result.
func decodeCanonical(b []byte, v any) error {
	if err := decodeStrict(b, v); err != nil {
		return err
	}
	c, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(c, b) {
		return fmt.Errorf("%w: not in canonical encoding (sign the canonical form: Go's json.Marshal of the value, %s)", ErrAmbiguousJSON, short(string(c)))
	}
	return nil
}

// decodeStrict decodes one JSON value from b into v, refusing invalid UTF-8,
// duplicate object keys, keys that are not exactly a field's JSON name
// (encoding/json would match them regardless of case), unknown fields and
// trailing data.
func decodeStrict(b []byte, v any) error {
	if !utf8.Valid(b) {
		return fmt.Errorf("%w: not valid UTF-8", ErrAmbiguousJSON)
	}
	if err := checkSurrogates(b); err != nil {
		return err
	}
	if err := checkKeys(b, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the JSON value", ErrAmbiguousJSON)
	}
	return nil
}

// checkKeys walks b's tokens alongside type t and refuses duplicate keys in
// any object and keys of a struct-typed object that do not exactly spell one
// of its fields' JSON names. Type mismatches are left to encoding/json.
func checkKeys(b []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return walkValue(dec, t, "")
}

func walkValue(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		if t != nil {
			switch t.Kind() {
			case reflect.Struct:
				fields = jsonFields(t)
			case reflect.Map:
				elem = t.Elem()
			}
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			if seen[k] {
				return fmt.Errorf("%w: key %q appears twice in %s", ErrAmbiguousJSON, short(k), objName(path))
			}
			seen[k] = true
			ft := elem
			if fields != nil {
				var known bool
				if ft, known = fields[k]; !known {
					for name := range fields {
						if strings.EqualFold(name, k) {
							return fmt.Errorf("%w: key %q in %s must be spelled %q", ErrAmbiguousJSON, short(k), objName(path), name)
						}
					}
					return fmt.Errorf("%w: unknown field %q in %s", ErrAmbiguousJSON, short(k), objName(path))
				}
			}
			if err := walkValue(dec, ft, path+"."+k); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

func objName(path string) string {
	if path == "" {
		return "the top-level object"
	}
	return "object " + strings.TrimPrefix(path, ".")
}

// jsonFields returns the JSON names of a struct's fields and their types,
// following encoding/json's rules for tags and embedded structs (enough for
// hashfed's own types, which have no name conflicts).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// checkSurrogates refuses \u escapes of UTF-16 surrogates that do not form a
// pair: encoding/json turns them into U+FFFD, other parsers keep or refuse them.
func checkSurrogates(b []byte) error {
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(b) {
				return nil // a syntax error, reported by the decoder
			}
			i++
			if b[i] != 'u' {
				continue
			}
			r, ok := hex4(b, i+1)
			if !ok {
				continue // a syntax error, reported by the decoder
			}
			i += 4
			switch {
			case r >= 0xdc00 && r <= 0xdfff:
				return fmt.Errorf("%w: lone UTF-16 surrogate escape \\u%04x in a string", ErrAmbiguousJSON, r)
			case r >= 0xd800 && r <= 0xdbff:
				lo, ok := rune(0), false
				if i+2 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
					lo, ok = hex4(b, i+3)
				}
				if !ok || lo < 0xdc00 || lo > 0xdfff {
					return fmt.Errorf("%w: lone UTF-16 surrogate escape \\u%04x in a string", ErrAmbiguousJSON, r)
				}
				i += 6
			}
		}
	}
	return nil
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

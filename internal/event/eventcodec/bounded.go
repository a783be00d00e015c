package eventcodec

import (
	"errors"
	"fmt"
	"math"

	"github.com/hamba/avro/v2"
)

// Decoding limits. A message's Avro body is walked with its writer schema
// before anything is decoded (checkBounds): every length it claims — of a
// string, bytes, an array or map block — must fit in the bytes that remain,
// so a 100-byte message claiming 2^40 items is refused without allocating,
// whatever schema version wrote it. The limits below bound what is left: a
// body that really is large, or nests deeply.
const (
	// MaxValueBytes is the largest message value the decoder reads;
	// anything larger is refused before decoding.
	MaxValueBytes = 16 << 20
	// maxDepth bounds nesting (records in arrays in unions ...), so a
	// recursive writer schema cannot make a message recurse without end.
	maxDepth = 64
)

// decodeAPI is hamba/avro with its allocation limits set: no string or bytes
// value above MaxValueBytes, no array or map above 1 Mi elements.
// checkBounds is stricter for every real message; these stand behind it.
var decodeAPI = avro.Config{
	MaxByteSliceSize:  MaxValueBytes,
	MaxSliceAllocSize: 1 << 20,
}.Freeze()

// errBounds is wrapped by every refusal of checkBounds.
var errBounds = errors.New("claims more than the message holds")

// checkBounds walks body as data written with schema and returns an error
// wrapping errBounds if a length or count it claims exceeds what the body
// can hold, if an enum or union index is out of range, if it nests deeper
// than maxDepth, or if bytes remain after the value. It allocates nothing
// proportional to what the body claims.
func checkBounds(schema avro.Schema, body []byte) error {
	w := walker{buf: body, budget: len(body) + 1}
	if err := w.value(schema, 0); err != nil {
		return err
	}
	if w.pos != len(w.buf) {
		return fmt.Errorf("%d trailing bytes after the record", len(w.buf)-w.pos)
	}
	return nil
}

type walker struct {
	buf []byte
	pos int
	// budget is how many more array and map elements the value may have in
	// all. Elements of a type that takes no bytes (null, an empty record)
	// cost nothing to claim, so nested arrays of them could otherwise claim
	// len(body)^depth elements; each element, free or not, spends one.
	budget int
}

func (w *walker) remaining() int { return len(w.buf) - w.pos }

func (w *walker) fail(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s: %w", w.pos, fmt.Sprintf(format, args...), errBounds)
}

// long reads a zig-zag varint long, as Avro encodes int and long.
func (w *walker) long() (int64, error) {
	var u uint64
	for shift := uint(0); shift < 70; shift += 7 {
		if w.pos >= len(w.buf) {
			return 0, w.fail("varint runs past the end")
		}
		b := w.buf[w.pos]
		w.pos++
		if shift == 63 && b > 1 {
			return 0, w.fail("varint overflows 64 bits")
		}
		u |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return int64(u>>1) ^ -int64(u&1), nil
		}
	}
	return 0, w.fail("varint longer than 10 bytes")
}

func (w *walker) skip(n int64, what string) error {
	if n < 0 || n > int64(w.remaining()) {
		return w.fail("%s of %d bytes, %d remain", what, n, w.remaining())
	}
	w.pos += int(n)
	return nil
}

func (w *walker) value(s avro.Schema, depth int) error {
	if depth > maxDepth {
		return w.fail("nested deeper than %d", maxDepth)
	}
	switch s := s.(type) {
	case *avro.NullSchema:
		return nil
	case *avro.PrimitiveSchema:
		switch s.Type() {
		case avro.Boolean:
			return w.skip(1, "boolean")
		case avro.Int, avro.Long:
			v, err := w.long()
			if err == nil && s.Type() == avro.Int && (v < math.MinInt32 || v > math.MaxInt32) {
				err = w.fail("int %d out of range", v)
			}
			return err
		case avro.Float:
			return w.skip(4, "float")
		case avro.Double:
			return w.skip(8, "double")
		case avro.String, avro.Bytes:
			n, err := w.long()
			if err != nil {
				return err
			}
			return w.skip(n, string(s.Type()))
		}
	case *avro.RecordSchema:
		for _, f := range s.Fields() {
			if err := w.value(f.Type(), depth+1); err != nil {
				return fmt.Errorf("%s: %w", f.Name(), err)
			}
		}
		return nil
	case *avro.RefSchema:
		return w.value(s.Schema(), depth+1)
	case *avro.EnumSchema:
		i, err := w.long()
		if err == nil && (i < 0 || i >= int64(len(s.Symbols()))) {
			err = w.fail("enum index %d of %d symbols", i, len(s.Symbols()))
		}
		return err
	case *avro.FixedSchema:
		return w.skip(int64(s.Size()), "fixed")
	case *avro.UnionSchema:
		i, err := w.long()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(s.Types())) {
			return w.fail("union index %d of %d branches", i, len(s.Types()))
		}
		return w.value(s.Types()[i], depth+1)
	case *avro.ArraySchema:
		return w.blocks(depth, minSize(s.Items(), nil), func() error { return w.value(s.Items(), depth+1) })
	case *avro.MapSchema:
		// An entry is a string key then a value.
		return w.blocks(depth, 1+minSize(s.Values(), nil), func() error {
			n, err := w.long()
			if err == nil {
				err = w.skip(n, "map key")
			}
			if err == nil {
				err = w.value(s.Values(), depth+1)
			}
			return err
		})
	}
	return fmt.Errorf("schema type %s is not supported: %w", s.Type(), errBounds)
}

// blocks walks the blocks of an array or map, each a count (negative: then
// followed by its size in bytes) and that many elements, until a zero count.
func (w *walker) blocks(depth, elemMin int, elem func() error) error {
	for {
		count, err := w.long()
		if err != nil {
			return err
		}
		if count == 0 {
			return nil
		}
		if count < 0 {
			if count == math.MinInt64 {
				return w.fail("block count %d", count)
			}
			count = -count
			size, err := w.long()
			if err != nil {
				return err
			}
			if size < 0 || size > int64(w.remaining()) {
				return w.fail("block of %d bytes, %d remain", size, w.remaining())
			}
		}
		if count > int64(w.budget) || elemMin > 0 && count > int64(w.remaining()/elemMin) {
			return w.fail("block claims %d elements of at least %d bytes each, %d bytes remain", count, elemMin, w.remaining())
		}
		w.budget -= int(count)
		if elemMin == 0 {
			// Elements that take no bytes need no walk: the schema alone says
			// what they are (null, or records of nulls).
			continue
		}
		for range count {
			if err := elem(); err != nil {
				return err
			}
		}
	}
}

// minSize is the fewest bytes a value of s can take. Within a recursive
// schema a reference to a record being measured counts 0: a lower bound.
func minSize(s avro.Schema, seen map[string]bool) int {
	switch s := s.(type) {
	case *avro.NullSchema:
		return 0
	case *avro.PrimitiveSchema:
		switch s.Type() {
		case avro.Float:
			return 4
		case avro.Double:
			return 8
		}
		return 1 // boolean, a varint, or a length
	case *avro.RecordSchema:
		if seen == nil {
			seen = map[string]bool{}
		}
		if seen[s.FullName()] {
			return 0
		}
		seen[s.FullName()] = true
		defer delete(seen, s.FullName())
		n := 0
		for _, f := range s.Fields() {
			n += minSize(f.Type(), seen)
		}
		return n
	case *avro.RefSchema:
		return minSize(s.Schema(), seen)
	case *avro.FixedSchema:
		return s.Size()
	}
	return 1 // enum and union indexes, array and map terminators
}

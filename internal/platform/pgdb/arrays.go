package pgdb

import (
	"encoding/binary"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// Array parameters that a pool's connections (Open) write in PostgreSQL's
// binary array format in one pass. pgx writes a slice element by element,
// each boxed in an interface and given its own encode plan, into a buffer
// it starts again from 256 bytes for every statement: for the consumer's
// batches (statements of a dozen arrays of hundreds of elements, written
// while the database waits for them) that was a tenth of its CPU. Each of
// these types is the slice it names, so `unnest($1::uuid[])` takes it as
// pgx would take the plain slice; on a connection not opened by Open it is
// encoded as that plain slice, by pgx.
type (
	UUIDs      [][16]byte  // uuid[]
	Int8s      []int64     // bigint[]
	Int4s      []int32     // int[]
	Texts      []string    // text[]
	Timestamps []time.Time // timestamptz[]
)

// The element type OIDs the arrays declare.
const (
	uuidOID        = 2950
	int8OID        = 20
	int4OID        = 23
	textOID        = 25
	timestamptzOID = 1184
)

// arrayHeader appends the header of a one-dimensional binary array of n
// elements of type oid, without NULLs (array_recv's format).
func arrayHeader(b []byte, oid uint32, n int) []byte {
	b = binary.BigEndian.AppendUint32(b, 1) // dimensions (an empty array too, as pgx writes it)
	b = binary.BigEndian.AppendUint32(b, 0) // no NULLs
	b = binary.BigEndian.AppendUint32(b, oid)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return binary.BigEndian.AppendUint32(b, 1) // lower bound
}

// microsecondsToY2K is the Unix time, in microseconds, of PostgreSQL's
// timestamp epoch, 2000-01-01 00:00:00 UTC.
const microsecondsToY2K = 946684800 * 1000000

func (a UUIDs) appendBinary(b []byte) []byte {
	b = grow(arrayHeader(b, uuidOID, len(a)), len(a)*20)
	for _, u := range a {
		b = binary.BigEndian.AppendUint32(b, 16)
		b = append(b, u[:]...)
	}
	return b
}

func (a Int8s) appendBinary(b []byte) []byte {
	b = grow(arrayHeader(b, int8OID, len(a)), len(a)*12)
	for _, v := range a {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func (a Int4s) appendBinary(b []byte) []byte {
	b = grow(arrayHeader(b, int4OID, len(a)), len(a)*8)
	for _, v := range a {
		b = binary.BigEndian.AppendUint32(b, 4)
		b = binary.BigEndian.AppendUint32(b, uint32(v))
	}
	return b
}

func (a Texts) appendBinary(b []byte) []byte {
	size := len(a) * 4
	for _, s := range a {
		size += len(s)
	}
	b = grow(arrayHeader(b, textOID, len(a)), size)
	for _, s := range a {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func (a Timestamps) appendBinary(b []byte) []byte {
	b = grow(arrayHeader(b, timestamptzOID, len(a)), len(a)*12)
	for _, t := range a {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(t.Unix()*1000000+int64(t.Nanosecond())/1000-microsecondsToY2K))
	}
	return b
}

// grow returns b with room for n more bytes, in one allocation.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		b = append(make([]byte, 0, len(b)+n), b...)
	}
	return b
}

// registerArrays makes m write the array types above in one pass, as the
// binary parameters of their own array types: it wraps those types' codecs,
// which still encode everything else (the plain slices, the text format)
// and decode.
func registerArrays(m *pgtype.Map) {
	for _, oid := range []uint32{pgtype.UUIDArrayOID, pgtype.Int8ArrayOID, pgtype.Int4ArrayOID, pgtype.TextArrayOID, pgtype.TimestamptzArrayOID} {
		t, ok := m.TypeForOID(oid)
		if !ok {
			continue
		}
		m.RegisterType(&pgtype.Type{Name: t.Name, OID: oid, Codec: arrayCodec{Codec: t.Codec, oid: oid}})
	}
}

// arrayCodec is an array type's codec that encodes one of the types above
// itself, when it is the array of that type and the format binary.
type arrayCodec struct {
	pgtype.Codec
	oid uint32
}

func (c arrayCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if format == pgtype.BinaryFormatCode {
		switch value.(type) {
		case UUIDs:
			if oid == pgtype.UUIDArrayOID {
				return arrayPlan{}
			}
		case Int8s:
			if oid == pgtype.Int8ArrayOID {
				return arrayPlan{}
			}
		case Int4s:
			if oid == pgtype.Int4ArrayOID {
				return arrayPlan{}
			}
		case Texts:
			if oid == pgtype.TextArrayOID {
				return arrayPlan{}
			}
		case Timestamps:
			if oid == pgtype.TimestamptzArrayOID {
				return arrayPlan{}
			}
		}
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

type binaryArray interface{ appendBinary([]byte) []byte }

// arrayPlan writes a binaryArray.
type arrayPlan struct{}

func (arrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	return value.(binaryArray).appendBinary(buf), nil
}

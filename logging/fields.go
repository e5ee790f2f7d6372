package logging

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// kv is one structured field turned into text.
type kv struct {
	key, value string
}

// flatEncoder is a zapcore.ObjectEncoder that turns fields into an ordered
// list of key/value strings. Nested objects and namespaces are flattened
// into their parent, their keys joined with sep ("outcome" + "job_result"
// becomes "outcome_job_result" with sep "_"); arrays and reflected values
// become their JSON text. Durations are written as time.Duration.String
// ("1.5s") and times in RFC 3339 with nanoseconds.
type flatEncoder struct {
	prefix string
	sep    string
	kvs    *[]kv
}

var _ zapcore.ObjectEncoder = (*flatEncoder)(nil)

func newFlatEncoder(prefix, sep string, kvs []kv) *flatEncoder {
	own := append([]kv(nil), kvs...)
	return &flatEncoder{prefix: prefix, sep: sep, kvs: &own}
}

func (e *flatEncoder) key(k string) string {
	if e.prefix == "" {
		return k
	}
	return e.prefix + e.sep + k
}

func (e *flatEncoder) add(k, v string) {
	*e.kvs = append(*e.kvs, kv{key: e.key(k), value: v})
}

func (e *flatEncoder) AddArray(k string, m zapcore.ArrayMarshaler) error {
	enc := zapcore.NewMapObjectEncoder()
	err := enc.AddArray(k, m)
	e.addJSON(k, enc.Fields[k])
	return err
}

func (e *flatEncoder) AddObject(k string, m zapcore.ObjectMarshaler) error {
	sub := &flatEncoder{prefix: e.key(k), sep: e.sep, kvs: e.kvs}
	return m.MarshalLogObject(sub)
}

func (e *flatEncoder) AddBinary(k string, v []byte) {
	e.add(k, base64.StdEncoding.EncodeToString(v))
}
func (e *flatEncoder) AddByteString(k string, v []byte) { e.add(k, string(v)) }
func (e *flatEncoder) AddBool(k string, v bool)         { e.add(k, strconv.FormatBool(v)) }
func (e *flatEncoder) AddComplex128(k string, v complex128) {
	e.add(k, strconv.FormatComplex(v, 'g', -1, 128))
}
func (e *flatEncoder) AddComplex64(k string, v complex64) {
	e.add(k, strconv.FormatComplex(complex128(v), 'g', -1, 64))
}
func (e *flatEncoder) AddDuration(k string, v time.Duration) { e.add(k, v.String()) }
func (e *flatEncoder) AddFloat64(k string, v float64) {
	e.add(k, strconv.FormatFloat(v, 'g', -1, 64))
}
func (e *flatEncoder) AddFloat32(k string, v float32) {
	e.add(k, strconv.FormatFloat(float64(v), 'g', -1, 32))
}
func (e *flatEncoder) AddInt(k string, v int)         { e.AddInt64(k, int64(v)) }
func (e *flatEncoder) AddInt64(k string, v int64)     { e.add(k, strconv.FormatInt(v, 10)) }
func (e *flatEncoder) AddInt32(k string, v int32)     { e.AddInt64(k, int64(v)) }
func (e *flatEncoder) AddInt16(k string, v int16)     { e.AddInt64(k, int64(v)) }
func (e *flatEncoder) AddInt8(k string, v int8)       { e.AddInt64(k, int64(v)) }
func (e *flatEncoder) AddString(k, v string)          { e.add(k, v) }
func (e *flatEncoder) AddTime(k string, v time.Time)  { e.add(k, v.Format(time.RFC3339Nano)) }
func (e *flatEncoder) AddUint(k string, v uint)       { e.AddUint64(k, uint64(v)) }
func (e *flatEncoder) AddUint64(k string, v uint64)   { e.add(k, strconv.FormatUint(v, 10)) }
func (e *flatEncoder) AddUint32(k string, v uint32)   { e.AddUint64(k, uint64(v)) }
func (e *flatEncoder) AddUint16(k string, v uint16)   { e.AddUint64(k, uint64(v)) }
func (e *flatEncoder) AddUint8(k string, v uint8)     { e.AddUint64(k, uint64(v)) }
func (e *flatEncoder) AddUintptr(k string, v uintptr) { e.AddUint64(k, uint64(v)) }

func (e *flatEncoder) AddReflected(k string, v any) error {
	e.addJSON(k, v)
	return nil
}

func (e *flatEncoder) OpenNamespace(k string) { e.prefix = e.key(k) }

func (e *flatEncoder) addJSON(k string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		e.add(k, fmt.Sprint(v))
		return
	}
	e.add(k, string(b))
}

// maxFieldName is the longest field name journald accepts.
const maxFieldName = 64

// JournalFieldName turns a zap field key into a journal field name, following
// the rules of systemd.journal-fields(7) and sd_journal_print(3): letters are
// upper-cased, every character other than A-Z, 0-9 and "_" becomes "_",
// leading underscores (reserved for trusted fields) are dropped, a name that
// would start with a digit or be empty gets the prefix "F_", and the result
// is cut to 64 characters. "check" becomes CHECK, "elapsed_ms" ELAPSED_MS,
// "job-result" JOB_RESULT, "_x" X and "2fa" F_2FA.
func JournalFieldName(key string) string {
	var b strings.Builder
	b.Grow(len(key))
	for _, r := range key {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		default:
			b.WriteByte('_')
		}
	}
	name := strings.TrimLeft(b.String(), "_")
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		name = "F_" + name
	}
	if len(name) > maxFieldName {
		name = name[:maxFieldName]
	}
	return name
}

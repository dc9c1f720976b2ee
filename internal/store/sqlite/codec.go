package sqlite

import (
	"database/sql"
	"encoding/json"
	"time"
)

// Times are stored as INTEGER microseconds since the Unix epoch in UTC: exact, compact and
// ordered. Zero times are NULL.

// norm returns t as the store keeps it: UTC, microseconds, no monotonic reading.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func normPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := norm(*t)
	return &v
}

func micros(t time.Time) int64 { return t.UnixMicro() }

// nullMicros is NULL for the zero time.
func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func nullMicrosPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return nullMicros(*t)
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

func fromNullMicrosPtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// jsonText encodes v for a JSON column.
func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// nullJSON is NULL for a nil pointer or map, so that nil comes back nil and {} comes back {}.
func nullJSON(v any, isNil bool) (any, error) {
	if isNil {
		return nil, nil
	}
	return jsonText(v)
}

// fromJSON decodes a JSON column; NULL leaves dst as it is (nil).
func fromJSON(b []byte, dst any) error {
	if b == nil {
		return nil
	}
	return json.Unmarshal(b, dst)
}

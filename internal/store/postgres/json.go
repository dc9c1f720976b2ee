package postgres

import "encoding/json"

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

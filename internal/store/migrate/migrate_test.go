package migrate

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("two")},
		"m/0001_init.sql": {Data: []byte("one")},
		"m/README":        {Data: []byte("not sql")},
	}
	ms, err := Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Version != 1 || ms[0].SQL != "one" || ms[1].Name != "0002_more.sql" {
		t.Fatalf("got %+v", ms)
	}
	if p := Pending(ms, 1); len(p) != 1 || p[0].Version != 2 {
		t.Fatalf("pending after 1: %+v", p)
	}
	if p := Pending(ms, 2); len(p) != 0 {
		t.Fatalf("pending after 2: %+v", p)
	}
}

func TestLoadRejects(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"gap":        {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"duplicate":  {"m/0001_a.sql": {}, "m/001_b.sql": {}},
		"unnumbered": {"m/init.sql": {}},
		"zero":       {"m/0000_a.sql": {}},
		"empty":      {},
	} {
		if _, err := Load(fsys, "m"); err == nil {
			t.Errorf("%s: Load accepted it", name)
		}
	}
}

func TestCheck(t *testing.T) {
	ms := []Migration{{Version: 1, Name: "0001_init.sql"}, {Version: 2, Name: "0002_more.sql"}}
	if err := Check(ms, 2); err != nil {
		t.Fatal(err)
	}
	err := Check(ms, 0)
	if !errors.Is(err, ErrSchemaBehind) || !strings.Contains(err.Error(), "version 0") ||
		!strings.Contains(err.Error(), "version 2") || !strings.Contains(err.Error(), "0001_init.sql, 0002_more.sql") {
		t.Fatalf("behind: %v", err)
	}
	if err := Check(ms, 3); !errors.Is(err, ErrSchemaAhead) {
		t.Fatalf("ahead: %v", err)
	}
}

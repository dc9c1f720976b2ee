// Package migrate reads a store's numbered SQL migrations and tells which are pending.
//
// Each store embeds its own files, named NNNN_what.sql (0001_init.sql, 0002_webhooks.sql, …):
// versions start at 1 and have no gaps, so "the schema is at version N" means exactly which
// files ran. Applying them is each store's business, in its own dialect and transaction.
package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string // the file name, e.g. "0001_init.sql"
	SQL     string
}

// Load reads the *.sql files of dir in fsys, ordered by version. It fails on a file whose
// name does not start with a number, on duplicate versions and on gaps.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, fmt.Errorf("migrate: list %s: %w", dir, err)
	}
	var ms []Migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migrate: %s: name must be NNNN_what.sql", base)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", base, err)
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrate: %s: want version %d (versions start at 1, without gaps or duplicates)", m.Name, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("migrate: no migrations in %s", dir)
	}
	return ms, nil
}

// Pending returns the migrations after version current.
func Pending(ms []Migration, current int) []Migration {
	if current >= len(ms) {
		return nil
	}
	if current < 0 {
		current = 0
	}
	return ms[current:]
}

// ErrSchemaBehind is matched (errors.Is) by the error Check returns when the database needs
// migrations this binary has: run `hutong migrate`.
var ErrSchemaBehind = errors.New("database schema is behind this binary")

// ErrSchemaAhead is matched by the error Check returns when the database was migrated by a
// newer binary: this one does not know its tables.
var ErrSchemaAhead = errors.New("database schema is newer than this binary")

// Check returns nil when current is latest and otherwise an error naming both versions and
// the pending files.
func Check(ms []Migration, current int) error {
	latest := len(ms)
	switch {
	case current < latest:
		var names []string
		for _, m := range Pending(ms, current) {
			names = append(names, m.Name)
		}
		return fmt.Errorf("%w: schema is at version %d, this binary needs version %d (pending: %s); run `hutong migrate` first",
			ErrSchemaBehind, current, latest, strings.Join(names, ", "))
	case current > latest:
		return fmt.Errorf("%w: schema is at version %d, this binary knows versions up to %d; run a newer binary",
			ErrSchemaAhead, current, latest)
	}
	return nil
}

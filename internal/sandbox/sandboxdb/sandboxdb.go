// Package sandboxdb opens the wallet sandboxes' own SQLite database.
//
// The sandboxes keep their state (merchants, keys, orders, pending notifications) apart from the
// gateway's, as the real wallets would: one file, <data>/sandbox.db, shared by both emulators.
package sandboxdb

import (
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Open opens (creating if needed) the SQLite database at path with WAL, foreign keys and a busy timeout.
func Open(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sandboxdb: open %s: %w", path, err)
	}
	// One writer at a time is what SQLite allows; a small pool keeps readers concurrent.
	db.SetMaxOpenConns(4)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sandboxdb: open %s: %w", path, err)
	}
	return db, nil
}

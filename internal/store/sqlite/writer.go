package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// writeOp is one caller's write, run by the writer goroutine inside a shared transaction.
type writeOp struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error
}

// errClosed is returned for writes after Close.
var errClosed = errors.New("sqlite: store is closed")

// panicked carries a panic from fn back to its caller's goroutine.
type panicked struct{ v any }

func (p panicked) Error() string { return fmt.Sprintf("sqlite: write panicked: %v", p.v) }

// write runs fn in a write transaction and returns once that transaction has committed (or
// failed). fn's error is returned unchanged and undoes only fn's own writes. fn runs on the
// writer goroutine, after ctx was checked: its statements get ctx without its cancellation,
// because interrupting a statement would abort the whole shared transaction.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return errClosed
	}
	// Once handed over the write may commit: wait for the truth rather than for ctx.
	err := <-op.done
	if p, ok := err.(panicked); ok {
		panic(p.v)
	}
	return err
}

func (s *Store) writeLoop() {
	defer close(s.done)
	var batch []*writeOp
	for {
		if len(batch) == 0 {
			select {
			case op := <-s.ops:
				batch = append(batch, op)
			case <-s.closing:
				return
			}
		}
		// Whoever is waiting now shares this commit. Nobody waits for a batch to fill: a
		// lone write commits at once.
	gather:
		for len(batch) < s.maxBatch {
			select {
			case op := <-s.ops:
				batch = append(batch, op)
			default:
				break gather
			}
		}
		batch = s.commit(batch)
		if len(s.unprepared) > 0 {
			s.prepareNew()
		}
	}
}

// commit runs batch in one transaction and reports to each op. It returns the ops that did
// not run because the transaction broke under them, to be run again in a fresh one.
func (s *Store) commit(batch []*writeOp) (again []*writeOp) {
	live := batch[:0]
	for _, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.done <- err
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return nil
	}
	tx, err := s.wdb.BeginTx(context.Background(), nil)
	if err != nil {
		err = fmt.Errorf("sqlite: begin: %w", err)
		for _, op := range live {
			op.done <- err
		}
		return nil
	}
	if len(live) == 1 {
		// Alone: the transaction is the op's, no savepoint needed.
		op := live[0]
		if err := run(op, tx); err != nil {
			tx.Rollback()
			op.done <- err
			return nil
		}
		op.done <- s.finish(tx)
		return nil
	}

	results := make([]error, len(live))
	for i, op := range live {
		if _, err := tx.Exec("SAVEPOINT op"); err != nil {
			return s.abandon(tx, live[:i], results, live[i:], err)
		}
		results[i] = run(op, tx)
		if results[i] != nil {
			// A failed statement undoes only itself; undo the rest of the op's writes too.
			if _, err := tx.Exec("ROLLBACK TO op"); err != nil {
				// SQLite rolled back the whole transaction (I/O error, full disk…).
				return s.abandon(tx, live[:i+1], results, live[i+1:], err)
			}
		}
		if _, err := tx.Exec("RELEASE op"); err != nil {
			return s.abandon(tx, live[:i+1], results, live[i+1:], err)
		}
	}
	err = s.finish(tx)
	for i, op := range live {
		if results[i] != nil {
			op.done <- results[i]
		} else {
			op.done <- err
		}
	}
	return nil
}

// abandon gives up a broken transaction. The ops that ran in it lost their writes: those that
// had failed get their own error, the others the transaction's. The ops that had not run yet
// are returned, to run again in a fresh transaction.
func (s *Store) abandon(tx *sql.Tx, ran []*writeOp, results []error, notRun []*writeOp, cause error) []*writeOp {
	tx.Rollback()
	err := fmt.Errorf("sqlite: transaction rolled back: %w", cause)
	for i, op := range ran {
		if results[i] != nil {
			op.done <- results[i]
		} else {
			op.done <- err
		}
	}
	return append([]*writeOp(nil), notRun...)
}

func (s *Store) finish(tx *sql.Tx) error {
	s.commits.Add(1)
	return wrapCommit(tx.Commit())
}

func wrapCommit(err error) error {
	if err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// run calls op.fn, turning a panic into an error that write re-panics in the caller.
func run(op *writeOp, tx *sql.Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicked{v}
		}
	}()
	return op.fn(context.WithoutCancel(op.ctx), tx)
}

// stmt returns tx's form of query. Statements are prepared once on the write connection and
// reused; a query seen for the first time is prepared in tx alone and, once the connection is
// free again, for good (preparing on the pool while tx holds its one connection would wait
// forever). Only the writer goroutine calls it.
func (s *Store) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts[query]; ok {
		return tx.StmtContext(ctx, st), nil
	}
	s.unprepared[query] = true
	return tx.PrepareContext(ctx, query)
}

// prepareNew prepares the queries stmt met for the first time; the writer calls it between
// transactions. A failure only means the query is prepared per transaction a while longer.
func (s *Store) prepareNew() {
	for q := range s.unprepared {
		st, err := s.wdb.Prepare(q)
		if err != nil {
			continue
		}
		s.stmts[q] = st
		delete(s.unprepared, q)
	}
}

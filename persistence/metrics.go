package persistence

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
)

// Kinds of Postgres errors counted in bridge_persistence_errors_total. The
// set is fixed, so the label stays bounded.
const (
	// errKindConnection: the connection could not be made or broke, or the
	// server is shutting down (SQLSTATE classes 08 and 57P).
	errKindConnection = "connection"
	// errKindTimeout: a deadline passed or a statement timed out (57014).
	errKindTimeout = "timeout"
	// errKindResources: the server ran out of something (class 53).
	errKindResources = "resources"
	// errKindSerialization: a deadlock or serialization failure (class 40).
	errKindSerialization = "serialization"
	// errKindQuery: the statement does not fit the schema (class 42), for
	// example a migration that did not run.
	errKindQuery = "query"
	// errKindData: a value Postgres refused that the store does not map
	// to ErrInvalid or ErrConflict (other classes 22 and 23).
	errKindData = "data"
	// errKindServer: any other error the server reported.
	errKindServer = "server"
	// errKindOther: an error of the driver or the pool that is none of
	// the above, such as a closed pool.
	errKindOther = "other"
)

// errKinds lists every kind in the order the collector exports them.
var errKinds = []string{errKindConnection, errKindTimeout, errKindResources, errKindSerialization,
	errKindQuery, errKindData, errKindServer, errKindOther}

// errorCounts holds one counter per kind. mapError, which counts, is a
// plain function that every query of every Store calls, so the counts
// belong to the process, not to one Store; the Store's collector exports
// them.
var errorCounts = func() map[string]*atomic.Uint64 {
	m := make(map[string]*atomic.Uint64, len(errKinds))
	for _, k := range errKinds {
		m[k] = new(atomic.Uint64)
	}
	return m
}()

// countedError marks an error mapError has counted already, so an error
// that passes through mapError twice on its way up is counted once. Its
// text and its chain are the cause's.
type countedError struct{ err error }

func (e *countedError) Error() string { return e.err.Error() }
func (e *countedError) Unwrap() error { return e.err }

// countError counts err under its kind and returns it marked as counted.
// The store's own sentinel errors and canceled contexts (the caller gave
// up; Postgres did nothing wrong) are not counted.
func countError(err error) error {
	var counted *countedError
	if errors.As(err, &counted) || isSentinel(err) {
		return err
	}
	if errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	errorCounts[errorKind(err)].Add(1)
	return &countedError{err: err}
}

// isSentinel reports whether err is one of the package's own errors, which
// are results, not failures of Postgres.
func isSentinel(err error) bool {
	for _, s := range []error{ErrNotFound, ErrConflict, ErrInvalid, ErrInvalidCursor, ErrLeaseHeld, ErrFenced,
		ErrUnknownKey, ErrDecrypt, ErrUnknownRole, ErrQuotaExceeded, ErrKeyMismatch, ErrSystemAccount} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// errorKind classifies an error that is not an expected result.
func errorKind(err error) string {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		// Whatever the server answered, no connection was made.
		return errKindConnection
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code := pgErr.Code
		switch {
		case code == "57014":
			return errKindTimeout
		case len(code) != 5:
			return errKindServer
		case code[:2] == "08" || code[:3] == "57P":
			return errKindConnection
		case code[:2] == "53":
			return errKindResources
		case code[:2] == "40":
			return errKindSerialization
		case code[:2] == "42":
			return errKindQuery
		case code[:2] == "22" || code[:2] == "23":
			return errKindData
		}
		return errKindServer
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return errKindTimeout
	}
	switch {
	case errors.As(err, &netErr), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return errKindConnection
	}
	return errKindOther
}

// poolCollector exports the connection pool's statistics, read at scrape
// time.
type poolCollector struct {
	s            *Store
	conns        *prometheus.Desc
	maxConns     *prometheus.Desc
	acquires     *prometheus.Desc
	emptyAcquire *prometheus.Desc
	acquireWait  *prometheus.Desc
	canceled     *prometheus.Desc
	errors       *prometheus.Desc
}

// Collector returns a Prometheus collector of the store's connection pool:
// connections by state, the pool size, acquisitions, acquisitions that had
// to wait and the time spent acquiring, and the Postgres errors of the
// process by kind. Register it on the node's registry.
func (s *Store) Collector() prometheus.Collector {
	return &poolCollector{
		s: s,
		conns: prometheus.NewDesc("bridge_persistence_pool_connections",
			"Postgres connections of the pool by state.", []string{"state"}, nil),
		maxConns: prometheus.NewDesc("bridge_persistence_pool_max_connections",
			"Largest number of Postgres connections the pool opens.", nil, nil),
		acquires: prometheus.NewDesc("bridge_persistence_pool_acquires_total",
			"Connections acquired from the pool.", nil, nil),
		emptyAcquire: prometheus.NewDesc("bridge_persistence_pool_empty_acquires_total",
			"Acquisitions that waited because no connection was idle.", nil, nil),
		acquireWait: prometheus.NewDesc("bridge_persistence_pool_acquire_seconds_total",
			"Total time spent acquiring connections.", nil, nil),
		canceled: prometheus.NewDesc("bridge_persistence_pool_canceled_acquires_total",
			"Acquisitions canceled by their context.", nil, nil),
		errors: prometheus.NewDesc("bridge_persistence_errors_total",
			"Postgres errors that are not an expected result (not found, conflict, invalid value), by kind: "+
				"connection, timeout, resources, serialization, query, data, server, other.", []string{"kind"}, nil),
	}
}

// Describe sends the descriptors of the pool metrics.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.maxConns, c.acquires, c.emptyAcquire, c.acquireWait, c.canceled, c.errors} {
		ch <- d
	}
}

// Collect reads the pool statistics.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.AcquiredConns()), "acquired")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.ConstructingConns()), "constructing")
	ch <- prometheus.MustNewConstMetric(c.maxConns, prometheus.GaugeValue, float64(st.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(st.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.emptyAcquire, prometheus.CounterValue, float64(st.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.acquireWait, prometheus.CounterValue, st.AcquireDuration().Seconds())
	ch <- prometheus.MustNewConstMetric(c.canceled, prometheus.CounterValue, float64(st.CanceledAcquireCount()))
	for _, kind := range errKinds {
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(errorCounts[kind].Load()), kind)
	}
}

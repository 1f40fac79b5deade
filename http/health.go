package http

import (
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
)

// readyTimeout bounds one readiness check.
const readyTimeout = 3 * time.Second

// DependencyPostgres is the dependency name of the node's Postgres in
// DependencyError and in bridge_dependency_up.
const DependencyPostgres = "postgres"

// DependencyError is the failed readiness check of one named dependency
// (postgres, xmtp, xmtp_subscription, ...). A Ready function wraps each
// failed check in one with DependencyDown, so that the metric
// bridge_dependency_up{dependency} tells which dependency is down; a
// failure that names no dependency still turns bridge_ready to 0.
type DependencyError struct {
	// Dependency is a short, fixed name; it becomes a label value.
	Dependency string
	// Err is why the check failed.
	Err error
}

// Error reports the dependency and the cause.
func (e *DependencyError) Error() string { return e.Dependency + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *DependencyError) Unwrap() error { return e.Err }

// DependencyDown returns err as the failed check of dependency, or nil
// when err is nil.
func DependencyDown(dependency string, err error) error {
	if err == nil {
		return nil
	}
	return &DependencyError{Dependency: dependency, Err: err}
}

// readiness is one evaluation of the node's readiness: the error of the
// Ready function (nil when ready) and the state of the dependencies that
// evaluation checked or found down.
type readiness struct {
	err  error
	deps map[string]bool
}

// evaluateReadiness runs the same check as /readyz: Options.Ready, or a
// store ping when Ready is nil. Postgres is always checked on its own as
// well, so bridge_dependency_up{dependency="postgres"} is right even when
// Ready does not name its failures; the two checks run concurrently, so
// the whole evaluation takes at most readyTimeout.
func (s *Server) evaluateReadiness(ctx context.Context) readiness {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	deps := map[string]bool{}
	var err error
	if s.opts.Ready == nil {
		err = DependencyDown(DependencyPostgres, s.opts.Store.Ping(ctx))
		deps[DependencyPostgres] = err == nil
	} else {
		pinged := make(chan error, 1)
		go func() { pinged <- s.opts.Store.Ping(ctx) }()
		err = s.opts.Ready(ctx)
		deps[DependencyPostgres] = <-pinged == nil
		for _, name := range s.opts.Dependencies {
			deps[name] = true
		}
		for _, name := range failedDependencies(err) {
			deps[name] = false
		}
	}
	return readiness{err: err, deps: deps}
}

// failedDependencies returns the names of every DependencyError in the
// tree of err, including errors joined with errors.Join.
func failedDependencies(err error) []string {
	var names []string
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
			return
		case *DependencyError:
			names = append(names, e.Dependency)
			return
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		default:
			walk(errors.Unwrap(err))
		}
	}
	walk(err)
	return names
}

// healthz answers while the process runs.
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"ok": true, "node": s.opts.NodeID})
}

// readyz answers 503 while a dependency is down. The result also sets
// bridge_ready and bridge_dependency_up, which every scrape of /metrics
// evaluates again on its own.
func (s *Server) readyz(c *fiber.Ctx) error {
	r := s.evaluateReadiness(c.UserContext())
	s.metrics.setReadiness(r)
	if r.err != nil {
		s.log.Warn("not ready", "err", r.err)
		return errorf(fiber.StatusServiceUnavailable, CodeUnavailable, "not ready: a dependency is down")
	}
	return c.JSON(fiber.Map{"ok": true, "node": s.opts.NodeID})
}
